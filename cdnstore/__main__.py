"""The command line: cdnstore [--config PATH] init | serve | user add|disable|enable|delete|passwd | jobs | scrub |
backup | copy-database | check-config | import | demo, and `cdnstore upload`, a client of a running cdnstore."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import logging
import os
import re
import sys
import warnings
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from aiohttp import web

from . import __version__, appkeys, uploader
from . import config as config_module
from .config import Config
from .errors import CdnError, ConfigError, Conflict
from .imports import Import, Imports
from .logs import setup_logging
from .models import ImportState, User

log = logging.getLogger("cdnstore")


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.command == "upload":  # a client of a running cdnstore: no config file, no database
        from .uploader import run as upload

        return upload(args)
    try:
        cfg = config_module.load(args.config)
        setup_logging(cfg.log)
        return int(args.run(cfg, args) or 0)
    except ConfigError as exc:
        print(f"cdnstore: configuration error: {exc}", file=sys.stderr)
        return 2
    except CdnError as exc:
        print(f"cdnstore: {exc.code}: {exc.detail}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="cdnstore", description="A geo-distributed file store in front of S3-compatible servers."
    )
    p.add_argument("--version", action="version", version=f"cdnstore {__version__}")
    p.add_argument(
        "--config", metavar="PATH", default=None, help="config file (default: $CDNSTORE_CONFIG, else ./config.toml)"
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    sub.add_parser("init", help="create or upgrade the database (safe to run again)").set_defaults(run=cmd_init)
    sub.add_parser("serve", help="run the daemon: API, page and background work").set_defaults(run=cmd_serve)

    user = sub.add_parser("user", help="manage users").add_subparsers(dest="user_command", required=True)
    add = user.add_parser("add", help="create a user")
    add.add_argument("name")
    add.add_argument("--admin", action="store_true", help="the user is an administrator")
    add.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    add.set_defaults(run=cmd_user_add)
    for change, text in (
        ("disable", "disable a user: no login, every session ends, share links answer 410"),
        ("enable", "enable a disabled user again"),
        ("delete", "delete a user, their files (removed from every server by the daemon's jobs), links and history"),
    ):
        changing = user.add_parser(change, help=text)
        changing.add_argument("name")
        changing.set_defaults(run=cmd_user_change, change=change)
    passwd = user.add_parser("passwd", help="set a user's password (every session of the user ends)")
    passwd.add_argument("name")
    passwd.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    passwd.set_defaults(run=cmd_user_passwd)

    jobs = sub.add_parser("jobs", help="the job queue").add_subparsers(dest="jobs_command", required=True)
    listing = jobs.add_parser("list", help="list open and failed jobs")
    listing.add_argument("--status", choices=("queued", "running", "failed"), help="only jobs in this state")
    listing.set_defaults(run=cmd_jobs_list)
    retry = jobs.add_parser("retry", help="send a failed job back to the queue")
    retry.add_argument("id", help="the job's id, as listed")
    retry.set_defaults(run=cmd_jobs_retry)

    backup = sub.add_parser("backup", help="copy the database to PATH (safe while the daemon serves)")
    backup.add_argument("path", metavar="PATH", help="the backup file to write (replaced when it exists)")
    backup.set_defaults(run=cmd_backup)
    copy = sub.add_parser(
        "copy-database", help="copy everything into the empty PostgreSQL database at URL (stop the daemon first)"
    )
    copy.add_argument(
        "url",
        metavar="URL",
        help="postgresql://user@host:port/name (an empty database); its password from --password-file, "
        "else PGPASSWORD, else ~/.pgpass (PGPASSFILE): a password in the URL is visible to every user of "
        "this machine while the command runs",
    )
    copy.add_argument(
        "--password-file", metavar="PATH", help="a file whose first line is the target database's password"
    )
    copy.set_defaults(run=cmd_copy_database)
    sub.add_parser("check-config", help="validate the configuration and print it, secrets masked").set_defaults(
        run=cmd_check_config
    )

    scrub = sub.add_parser("scrub", help="compare every bucket with the database and enqueue the repairs")
    scrub.add_argument(
        "--deep",
        action="store_true",
        help="also read every replica back and compare its SHA-256 (at most scrub.deep_rate bytes a second)",
    )
    scrub.set_defaults(run=cmd_scrub)

    uploader.parser_of(sub)
    imp = sub.add_parser(
        "import", help="adopt the objects already in a server's bucket as files of a user (big buckets; resumable)"
    )
    imp.add_argument("server", metavar="SERVER", help="the registered server's name")
    imp.add_argument("--owner", required=True, metavar="NAME", help="the user the files will belong to")
    imp.add_argument("--prefix", default="", metavar="P", help="only the keys that start with P")
    imp.add_argument("--strip-prefix", action="store_true", help="name each file by its key without the prefix")
    imp.set_defaults(run=cmd_import)

    demo = sub.add_parser("demo", help="start five local S3 servers and the daemon, ready to try")
    demo.add_argument("--dir", default="var/demo", help="where the demo keeps all its data (default: var/demo)")
    demo.add_argument("--port", type=int, default=None, help="HTTP port (default: http.port)")
    demo.add_argument(
        "--daemons",
        type=int,
        default=1,
        help="daemons to run (default 1, on SQLite); 2 or more share a throwaway PostgreSQL "
        "database (needs PostgreSQL's server binaries) on ports port, port + 1, ..., starting with a copy of "
        "the one-daemon demo's data",
    )
    demo.add_argument(
        "--verbose",
        action="store_true",
        help="print every log line (requests, copies, jobs) here too; they always go to DIR/cdnstore.log",
    )
    demo.set_defaults(run=cmd_demo)
    return p


def cmd_init(cfg: Config, args: argparse.Namespace) -> int:
    from .db import connect

    database = connect(cfg.database)
    where = database.where
    before, after = asyncio.run(database.upgrade())
    if before == after:
        print(f"{where} is up to date (version {after})")
    else:
        print(f"{where}: version {before} -> {after}")
    return 0


def cmd_serve(cfg: Config, args: argparse.Namespace) -> int:
    from .api.server import serve
    from .app import create_app

    app = create_app(cfg)
    log.info(
        "cdnstore %s serving on http://%s:%s (public URL %s)",
        __version__,
        cfg.http.host,
        cfg.http.port,
        cfg.http.public_url,
    )
    # SIGTERM/SIGINT: the sockets close, no new job starts, in-flight requests and running jobs get
    # jobs.shutdown_grace seconds (jobs still running then go back to the queue), then the database closes.
    asyncio.run(serve(app, host=cfg.http.host, port=cfg.http.port, shutdown_timeout=cfg.jobs.shutdown_grace))
    log.info("cdnstore stopped")
    return 0


def cmd_backup(cfg: Config, args: argparse.Namespace) -> int:
    from .backup import BackupError, backup

    if cfg.database.url:
        print(
            "cdnstore: the database is PostgreSQL (database.url): back it up with PostgreSQL's own tools, "
            'e.g. `pg_dump --format=custom --file=cdnstore.dump "$CDNSTORE_DATABASE_URL"` '
            "(consistent while the daemons serve), or continuous archiving",
            file=sys.stderr,
        )
        return 1
    try:
        done = backup(cfg.database.path, args.path)
    except BackupError as exc:
        print(f"cdnstore: {exc}", file=sys.stderr)
        return 1
    print(f"backed up {cfg.database.path} to {done.path} ({done.size} bytes, schema version {done.schema_version})")
    return 0


def cmd_copy_database(cfg: Config, args: argparse.Namespace) -> int:
    from .db.copy import CopyRefused, copy_database

    if not args.url.startswith(("postgresql://", "postgres://")):
        print("cdnstore: URL must be a postgresql:// URL", file=sys.stderr)
        return 2
    try:
        target = target_url(args.url, args.password_file)
    except ValueError as exc:
        print(f"cdnstore: {exc}", file=sys.stderr)
        return 2
    source = "the PostgreSQL database (database.url)" if cfg.database.url else cfg.database.path
    # The copy is a snapshot: what a running daemon writes after it began is not in it.
    print(
        f"cdnstore: copying {source} as it is now; stop the daemon first, or what it writes from now on is not copied",
        file=sys.stderr,
    )
    try:
        done = asyncio.run(
            copy_database(
                cfg.database.path,
                cfg.database.url,
                target,
                lambda line: print(f"cdnstore: {line}", file=sys.stderr, flush=True),
            )
        )
    except CopyRefused as exc:
        print(f"cdnstore: {exc}", file=sys.stderr)
        return 1
    print(
        f"copied {sum(done.tables.values())} rows of {len(done.tables)} tables in {done.seconds:.1f} s; "
        "set database.url to the new database and start the daemons"
    )
    return 0


def target_url(url: str, password_file: str | None) -> str:
    """copy-database's target: `url`, with the password of `password_file` (its first line) when given. A
    password in the URL itself works but is warned of: the command line is readable by every local user
    (ps, /proc) and stays in the shell's history. Without either, asyncpg reads PGPASSWORD, then the
    password file (~/.pgpass, or PGPASSFILE), as libpq does."""
    parts = urlsplit(url)
    if password_file is None:
        if parts.password:
            print(
                "cdnstore: warning: the password in URL is visible to every user of this machine while the copy "
                "runs, and stays in the shell's history: give it in PGPASSWORD or --password-file instead",
                file=sys.stderr,
            )
        return url
    if parts.password:
        raise ValueError("the URL holds a password and --password-file names another: give one of them")
    try:
        lines = Path(password_file).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"--password-file: cannot read {password_file}: {exc.__class__.__name__}") from None
    if not lines or not lines[0]:
        raise ValueError(f"--password-file: {password_file} holds no password on its first line")
    user = quote(unquote(parts.username or ""), safe="")
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{user}:{quote(lines[0], safe='')}@{host}"))


SECRET_SUFFIXES = ("secret_key", "secret", "token", "password")  # (secret: oidc.client_secret)
MASK = "********"


def cmd_check_config(cfg: Config, args: argparse.Namespace) -> int:
    """The effective configuration (file + environment + defaults) as TOML, secrets masked; exit 2
    when it could not serve."""
    import json

    for section, keys in cfg.model_dump(mode="json").items():
        print(f"[{section}]")
        for key, value in keys.items():
            if key.endswith(SECRET_SUFFIXES) and value:
                value = MASK
            elif (section, key) == ("database", "url") and value:  # its password, if it has one
                value = re.sub(r"(://[^:/@]*:)[^@]*@", rf"\g<1>{MASK}@", value)
            print(f"{key} = {json.dumps(value)}")  # JSON scalars and lists are valid TOML
        print()
    problems = []
    try:
        cfg.require_secret()
    except ConfigError as exc:
        problems.append(str(exc))
    problems.extend(_check_geoip(cfg))
    if not cfg.events.token:
        print("cdnstore: warning: events.token is empty: storage servers' webhooks are refused", file=sys.stderr)
    for problem in problems:
        print(f"cdnstore: configuration error: {problem}", file=sys.stderr)
    if problems:
        return 2
    print("cdnstore: configuration OK", file=sys.stderr)
    return 0


def _check_geoip(cfg: Config) -> list[str]:
    """Says which GeoIP database serves and when it was built; the problem when it cannot serve."""
    from .geo import GeoDatabaseError, GeoLocator

    if cfg.geoip.database and not Path(cfg.geoip.database).is_file():
        return [f"geoip.database: no file at {cfg.geoip.database}"]
    try:
        with GeoLocator(cfg.geoip.database or None) as locator:
            old = ': over a year old, update it (docs/operations.md, "GeoIP data")' if locator.outdated() else ""
            print(f"cdnstore: GeoIP database {locator.path}: {locator.describe()}{old}", file=sys.stderr)
    except GeoDatabaseError as exc:
        return [f"geoip.database: {exc}"]
    return []


def read_password(args: argparse.Namespace) -> str | None:
    """From standard input (--password-stdin) or asked twice on the terminal; None (having said why in a line)
    when the two differ, or when there is no terminal to ask on (a script, a service, `sudo` without one)."""
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    try:
        with warnings.catch_warnings():
            # Without a terminal getpass would read standard input, echoing it, and fail at its end.
            warnings.simplefilter("error", getpass.GetPassWarning)
            password = getpass.getpass(f"password for {args.name}: ")
            again = getpass.getpass("again: ")
    except (EOFError, getpass.GetPassWarning):
        print(
            "cdnstore: no terminal to ask for the password on: give it on standard input with --password-stdin",
            file=sys.stderr,
        )
        return None
    if password != again:
        print("cdnstore: the passwords differ", file=sys.stderr)
        return None
    return password


def cmd_user_add(cfg: Config, args: argparse.Namespace) -> int:
    password = read_password(args)
    if password is None:
        return 1
    user = asyncio.run(_add_user(cfg, args.name, password, args.admin))
    print(f"created user {user.username} ({user.id}){' as administrator' if user.is_admin else ''}")
    return 0


async def _add_user(cfg: Config, name: str, password: str, admin: bool) -> User:
    from .api.endpoint import validate
    from .api.schemas import UserCreate
    from .auth import Passwords, Tokens
    from .db import connect
    from .users import Accounts

    body = validate(UserCreate, {"username": name, "password": password, "is_admin": admin})
    db = connect(cfg.database)
    await db.open()
    try:
        accounts = Accounts(db, cfg.auth, await asyncio.to_thread(Passwords, cfg.auth), Tokens(cfg.auth))
        return (await accounts.create(body.username, body.password, is_admin=body.is_admin)).user
    finally:
        await db.close()


def cmd_user_change(cfg: Config, args: argparse.Namespace) -> int:
    """disable, enable or delete; refused (last_admin) when no enabled administrator would be left."""
    from .users import UserChanges

    async def run() -> None:
        async with offline(cfg) as app:
            accounts = app[appkeys.ACCOUNTS]
            user_uuid = await accounts.uuid_of(args.name)
            if args.change == "delete":
                await accounts.delete(user_uuid, app[appkeys.JOBS])
            else:
                await accounts.update(user_uuid, UserChanges(is_disabled=args.change == "disable"))

    asyncio.run(run())
    done = {
        "disable": "disabled (their sessions ended)",
        "enable": "enabled",
        "delete": "deleted; the daemon removes their files from the storage servers",
    }[args.change]
    print(f"user {args.name} {done}")
    return 0


def cmd_user_passwd(cfg: Config, args: argparse.Namespace) -> int:
    from .api.endpoint import validate
    from .api.schemas import UserPatch, changes_of
    from .users import UserChanges

    password = read_password(args)
    if password is None:
        return 1
    body = validate(UserPatch, {"password": password})

    async def run() -> None:
        async with offline(cfg) as app:
            accounts = app[appkeys.ACCOUNTS]
            await accounts.update(await accounts.uuid_of(args.name), changes_of(body, UserChanges))

    asyncio.run(run())
    print(f"user {args.name} has a new password (their sessions ended)")
    return 0


@contextlib.asynccontextmanager
async def offline(cfg: Config) -> AsyncIterator[web.Application]:
    """The daemon's parts, wired as when serving, without serving or background work."""
    from .app import create_app

    runner = web.AppRunner(create_app(cfg, tool=True))
    await runner.setup()
    try:
        yield runner.app
    finally:
        await runner.cleanup()


def cmd_jobs_list(cfg: Config, args: argparse.Namespace) -> int:
    async def run() -> int:
        from .api.jobs import render_job_row

        async with offline(cfg) as app:
            after, count = None, 0
            while True:
                entries = await app[appkeys.JOBS].page(args.status, 1000, after)
                for entry in entries[:1000]:
                    job = render_job_row(app, entry)
                    server = job["server"]["name"] if job["server"] else "-"
                    print(
                        f"{job['id']}  {job['kind']:<6} {job['status']:<7} attempts={job['attempts']} "
                        f"server={server} file={job['file_name']!r}"
                        + (f"  error: {job['last_error']}" if job["last_error"] else "")
                    )
                    count += 1
                if len(entries) <= 1000:
                    break
                after = entries[999].id
            print(f"{count} job(s)", file=sys.stderr)
        return 0

    return asyncio.run(run())


def cmd_jobs_retry(cfg: Config, args: argparse.Namespace) -> int:
    async def run() -> int:
        async with offline(cfg) as app:
            entry = await app[appkeys.JOBS].retry(args.id)
            print(f"job {args.id} is {entry.status} again")
        return 0

    return asyncio.run(run())


def cmd_scrub(cfg: Config, args: argparse.Namespace) -> int:
    async def deep_scrub(app: web.Application) -> int:
        report = await app[appkeys.DEEP_SCRUB].scrub()
        if report is None:
            print("cdnstore: another daemon is running a deep scrub pass; try again later", file=sys.stderr)
            return 1
        print("deep scrub: " + " ".join(f"{k}={v}" for k, v in report.as_dict().items()))
        if report.stopped:
            print("cdnstore: the deep scrub pass stopped early: its lease was lost (see the log)", file=sys.stderr)
            return 1
        if report.without_good_holder:
            print(
                f"cdnstore: {report.without_good_holder} stored version(s) have no good copy left on any server "
                "(see the log)",
                file=sys.stderr,
            )
            return 1
        print(
            "every replica read matched"
            if not (report.corrupt or report.missing)
            else f"{report.corrupt} corrupt and {report.missing} missing replica(s), repairs enqueued"
        )
        return 0

    async def run() -> int:
        async with offline(cfg) as app:
            await app[appkeys.HEALTH].check_all()
            drifts = await app[appkeys.SCRUB].scrub()
            for d in drifts:
                print(
                    f"{d.server:<16} objects={d.objects} missing={d.missing} lost={d.lost} orphans={d.orphans} "
                    f"adopted={d.adopted} unknown={d.unknown} aborted={d.aborted} unfilled={d.unfilled}"
                )
                if d.recount:  # the triggers' counters had drifted from the replica table
                    print(
                        f"{d.server:<16} counters fixed: files {d.recount.files_was}->{d.recount.files} "
                        f"bytes {d.recount.bytes_was}->{d.recount.bytes}"
                    )
            drift = sum(not d.clean for d in drifts)
            print(
                f"scrubbed {len(drifts)} server(s); {drift} with drift, repairs enqueued"
                if drift
                else f"scrubbed {len(drifts)} server(s); no drift"
            )
            return await deep_scrub(app) if args.deep else 0

    return asyncio.run(run())


def cmd_import(cfg: Config, args: argparse.Namespace) -> int:
    """Start (or go on with) the import of a server's bucket, and run it here to its end: while a daemon runs
    it, follow its progress instead. Run it again after an interruption: it goes on from the last key."""

    async def run() -> int:
        async with offline(cfg) as app:
            imports, server = app[appkeys.IMPORTS], app[appkeys.SERVERS].by_name(args.server)
            try:
                found = await imports.start(server.id, args.owner, args.prefix, args.strip_prefix)
            except Conflict:  # one runs: go on with it if it is this one
                found = await imports.latest(server.id)
                if (found.owner, found.prefix, found.strip_prefix) != (args.owner, args.prefix, args.strip_prefix):
                    print(
                        f"cdnstore: another import of {server.name} is running (owner {found.owner}, prefix "
                        f"{found.prefix!r}); wait for it to end",
                        file=sys.stderr,
                    )
                    return 1
                print(f"going on with the import of {server.name} that is running")
            async with running_progress(imports, server.id):
                while not await imports.run(found.uuid):  # a daemon runs it: follow it
                    found = await imports.latest(server.id)
                    if found.state is not ImportState.RUNNING:
                        break
                    await asyncio.sleep(2)
            found = await imports.latest(server.id)
            print(import_line(found))
            for reported in await imports.reported(found.uuid):
                print(f"not adopted: {reported.key!r}: {reported.reason}")
            if found.state is not ImportState.DONE:
                print(
                    f"cdnstore: the import is not finished: {found.last_error}; run this again to go on",
                    file=sys.stderr,
                )
                return 1
            return 0

    return asyncio.run(run())


def import_line(found: Import) -> str:
    return (
        f"import {found.state}: objects_seen={found.objects_seen} files_adopted={found.files_adopted} "
        f"bytes={found.bytes} errors={found.errors}"
    )


@contextlib.asynccontextmanager
async def running_progress(imports: Imports, server_uuid: str) -> AsyncIterator[None]:
    """A progress line on standard error every few seconds while the block runs."""

    async def report() -> None:
        while True:
            await asyncio.sleep(5)
            print(import_line(await imports.latest(server_uuid)), file=sys.stderr)

    task = asyncio.create_task(report(), name="import-progress")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


# The demo runs local storage servers from the test bed (testbed/, beside this package in a source checkout),
# which the product's install does not carry: imported here only, and only when asked for.
NO_TESTBED = (
    "cdnstore demo: the demo needs cdnstore's test bed (testbed/ of a source checkout), not installed here: "
    "run `python3 dev.py demo` in the checkout (or `pip install -e ./testbed` there)"
)


def cmd_demo(cfg: Config, args: argparse.Namespace) -> int:
    try:
        from testbed.demo import run_demo
    except ModuleNotFoundError as exc:
        if exc.name != "testbed":
            raise
        print(NO_TESTBED, file=sys.stderr)
        return 1
    code = run_demo(cfg, args.dir, args.port, args.daemons, verbose=args.verbose)
    # Everything is stopped, closed and written by now. Freeing the heap (botocore's models of a client per
    # storage server, the page's files, ...) object by object, as the interpreter's own exit does, took
    # longer than the whole stop on a busy machine (seconds after "stopped"): there is nothing left to free.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    sys.exit(main())

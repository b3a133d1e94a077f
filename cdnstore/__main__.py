"""The command line: cdnstore [--config PATH] init | serve | user add | demo."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import sys
from collections.abc import Sequence

from . import __version__
from . import config as config_module
from .config import Config
from .errors import CdnError, ConfigError
from .models import User

log = logging.getLogger("cdnstore")


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        cfg = config_module.load(args.config)
        setup_logging(cfg)
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
    p = argparse.ArgumentParser(prog="cdnstore", description="A geo-distributed file store in front of "
                                "S3-compatible servers.")
    p.add_argument("--version", action="version", version=f"cdnstore {__version__}")
    p.add_argument("--config", metavar="PATH", default=None,
                   help="config file (default: $CDNSTORE_CONFIG, else ./config.toml)")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    sub.add_parser("init", help="create or upgrade the database (safe to run again)").set_defaults(run=cmd_init)
    sub.add_parser("serve", help="run the daemon: API, page and background work").set_defaults(run=cmd_serve)

    user = sub.add_parser("user", help="manage users").add_subparsers(dest="user_command", required=True)
    add = user.add_parser("add", help="create a user")
    add.add_argument("name")
    add.add_argument("--admin", action="store_true", help="the user is an administrator")
    add.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    add.set_defaults(run=cmd_user_add)

    demo = sub.add_parser("demo", help="start five local S3 servers and the daemon, ready to try")
    demo.add_argument("--dir", default="var/demo", help="where the demo keeps all its data (default: var/demo)")
    demo.add_argument("--port", type=int, default=None, help="HTTP port (default: http.port)")
    demo.set_defaults(run=cmd_demo)
    return p


def setup_logging(cfg: Config) -> None:
    logging.basicConfig(level=cfg.log.level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def cmd_init(cfg: Config, args: argparse.Namespace) -> int:
    from .db import initialize

    before, after = initialize(cfg.database.path)
    if before == after:
        print(f"database {cfg.database.path} is up to date (version {after})")
    else:
        print(f"database {cfg.database.path}: version {before} -> {after}")
    return 0


def cmd_serve(cfg: Config, args: argparse.Namespace) -> int:
    from aiohttp import web

    from .app import create_app

    app = create_app(cfg)
    log.info("cdnstore %s serving on http://%s:%s (public URL %s)", __version__, cfg.http.host,
             cfg.http.port, cfg.http.public_url)
    web.run_app(app, host=cfg.http.host, port=cfg.http.port, access_log=None, print=None)
    return 0


def cmd_user_add(cfg: Config, args: argparse.Namespace) -> int:
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass(f"password for {args.name}: ")
        if password != getpass.getpass("again: "):
            print("cdnstore: the passwords differ", file=sys.stderr)
            return 1
    user = asyncio.run(_add_user(cfg, args.name, password, args.admin))
    print(f"created user {user.username} ({user.id}){' as administrator' if user.is_admin else ''}")
    return 0


async def _add_user(cfg: Config, name: str, password: str, admin: bool) -> User:
    from .api.endpoint import validate
    from .api.schemas import UserCreate
    from .auth import Passwords, Tokens
    from .db import Database
    from .users import Accounts

    body = validate(UserCreate, {"username": name, "password": password, "is_admin": admin})
    db = Database(cfg.database.path)
    await db.open()
    try:
        accounts = Accounts(db, cfg.auth, await asyncio.to_thread(Passwords, cfg.auth), Tokens(cfg.auth))
        return await accounts.create(body.username, body.password, is_admin=body.is_admin)
    finally:
        await db.close()


def cmd_demo(cfg: Config, args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(cfg, args.dir, args.port)


if __name__ == "__main__":
    sys.exit(main())

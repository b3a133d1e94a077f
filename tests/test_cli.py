"""The command line, run as a user would: init, user add, serve's refusal, and the demo."""

from __future__ import annotations

import asyncio
import hashlib
import re
import signal
import sqlite3
from pathlib import Path
from typing import Any

import aiohttp
from clihelp import by_marker, cdnstore, doc_blocks, json_values, marked, start_demo
from weedbed import unused_port

from cdnstore.demo import DEMO_PASSWORD, ORIGINAL_LAYOUT

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
# Run as written, but strict: the first failing command (an HTTP error included) ends the script.
STRICT = 'set -euo pipefail\nshopt -s inherit_errexit\ncurl() { command curl --fail-with-body "$@"; }\n'


def readme_demo_script() -> str:
    """The README's blocks for the demo, in order, each numbered comment turned into a marker to split
    the output by: `### 3` for `# 3. ...`, `### block 2` at the start of the second block."""
    blocks = doc_blocks(README)
    # The first block is the two commands that start everything; "Running it for real" is no demo.
    assert blocks[0][0] == "" and blocks[0][1].startswith("python3 dev.py demo    #")
    demo = [block for title, block in blocks[1:] if title != "Running it for real"]
    assert all(title.startswith("Try it") for title, block in blocks[1:] if block in demo), blocks
    return STRICT + "".join(f"printf '\\n### block {n}\\n'\n" + marked(block) for n, block in enumerate(demo, 1))


def test_init_creates_the_database_and_is_safe_to_run_again(tmp_path: Path) -> None:
    first = cdnstore("init", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert (tmp_path / "var" / "cdnstore.sqlite3").exists()
    again = cdnstore("init", cwd=tmp_path)
    assert again.returncode == 0 and "up to date" in again.stdout


def test_user_add_reads_the_password_from_stdin(tmp_path: Path) -> None:
    made = cdnstore("user", "add", "alice", "--admin", "--password-stdin", cwd=tmp_path, stdin="pass-word-1\n")
    assert made.returncode == 0, made.stderr
    assert "alice" in made.stdout and "administrator" in made.stdout
    conn = sqlite3.connect(tmp_path / "var" / "cdnstore.sqlite3")
    assert conn.execute("SELECT username, is_admin FROM users").fetchall() == [("alice", 1)]
    taken = cdnstore("user", "add", "alice", "--password-stdin", cwd=tmp_path, stdin="pass-word-1\n")
    assert taken.returncode == 1 and "username_taken" in taken.stderr
    short = cdnstore("user", "add", "bob", "--password-stdin", cwd=tmp_path, stdin="short\n")
    assert short.returncode == 1 and "password" in short.stderr


def test_user_add_without_a_terminal_says_in_a_line_to_give_the_password_on_stdin(tmp_path: Path) -> None:
    """Run by a script or a service (no terminal to ask on): no EOFError traceback, the way to do it."""
    for command in (("user", "add", "admin", "--admin"), ("user", "passwd", "admin")):
        asked = cdnstore(*command, cwd=tmp_path, stdin="")
        assert asked.returncode == 1 and asked.stderr.count("\n") == 1, asked
        assert "no terminal to ask for the password on" in asked.stderr and "--password-stdin" in asked.stderr


def test_user_disable_enable_passwd_and_delete_never_leave_no_enabled_admin(tmp_path: Path) -> None:
    from argon2 import PasswordHasher

    for name, admin in (("root", ["--admin"]), ("alice", [])):
        assert (
            cdnstore("user", "add", name, *admin, "--password-stdin", cwd=tmp_path, stdin="pass-word-1\n").returncode
            == 0
        )
    conn = sqlite3.connect(tmp_path / "var" / "cdnstore.sqlite3")

    def row(name: str) -> tuple[Any, ...]:
        found: tuple[Any, ...] = conn.execute(
            "SELECT is_disabled, password_hash, deleted_at FROM users WHERE username = ?", (name,)
        ).fetchone()
        return found

    for refused in (("disable", "root"), ("delete", "root")):
        last = cdnstore("user", *refused, cwd=tmp_path)
        assert last.returncode == 1 and "last_admin" in last.stderr, last
    assert cdnstore("user", "disable", "alice", cwd=tmp_path).returncode == 0
    assert row("alice")[0] == 1
    assert cdnstore("user", "enable", "alice", cwd=tmp_path).returncode == 0
    assert row("alice")[0] == 0
    changed = cdnstore("user", "passwd", "alice", "--password-stdin", cwd=tmp_path, stdin="a new password\n")
    assert changed.returncode == 0, changed.stderr
    assert PasswordHasher().verify(row("alice")[1], "a new password")
    short = cdnstore("user", "passwd", "alice", "--password-stdin", cwd=tmp_path, stdin="short\n")
    assert short.returncode == 1 and "password" in short.stderr
    assert cdnstore("user", "delete", "alice", cwd=tmp_path).returncode == 0
    assert row("alice") is None
    assert conn.execute("SELECT count(*) FROM users WHERE deleted_at IS NOT NULL").fetchone() == (1,)
    unknown = cdnstore("user", "disable", "nobody", cwd=tmp_path)
    assert unknown.returncode == 1 and "user_not_found" in unknown.stderr


def test_serve_refuses_to_start_without_a_secret_key(tmp_path: Path) -> None:
    answer = cdnstore("serve", cwd=tmp_path)
    assert answer.returncode == 2
    assert "auth.secret_key" in answer.stderr


def test_a_bad_config_stops_every_command_with_the_key_named(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text("[http]\nport = 'eighty'\n")
    answer = cdnstore("init", cwd=tmp_path)
    assert answer.returncode == 2 and "http.port = 'eighty'" in answer.stderr
    env_answer = cdnstore("--config", str(tmp_path / "none.toml"), "init", cwd=tmp_path)
    assert env_answer.returncode == 2 and "not found" in env_answer.stderr


async def test_demo_serves_a_working_login_and_the_five_servers(tmp_path: Path) -> None:
    port = unused_port()
    proc, out = await start_demo(tmp_path, port)
    try:
        url = re.search(r"running at (http://\S+)/", out)[1]  # type: ignore[index]
        assert f"admin / {DEMO_PASSWORD}" in out and f"user / {DEMO_PASSWORD}" in out
        s3_endpoints = re.findall(r"^    \w+ +.+?(http://127\.0\.0\.1:\d+)", out, re.M)
        assert len(s3_endpoints) == 5
        async with aiohttp.ClientSession() as http:
            async with http.post(
                f"{url}/api/v1/auth/login", json={"username": "admin", "password": DEMO_PASSWORD}
            ) as resp:
                assert resp.status == 200
                token = (await resp.json())["access_token"]
            async with http.get(f"{url}/api/v1/servers", headers={"Authorization": f"Bearer {token}"}) as resp:
                servers = (await resp.json())["items"]
            async with http.post(
                f"{url}/api/v1/auth/login", json={"username": "user", "password": DEMO_PASSWORD}
            ) as resp:
                assert resp.status == 200
        assert [(s["location"], s["zone"], s["is_active"], s["health"]) for s in servers] == [
            (site.location, site.zone, site.is_active, "up") for site in ORIGINAL_LAYOUT
        ]
        (tmp_path / ".venv").symlink_to(ROOT / ".venv")  # run from a checkout, where dev.py made .venv
        readme = await asyncio.create_subprocess_exec(
            "bash",
            "-c",
            readme_demo_script().replace("http://127.0.0.1:8080", url),
            cwd=tmp_path,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        shown, errors = await asyncio.wait_for(readme.communicate(), 60)
        assert readme.returncode == 0, shown.decode() + errors.decode()
        steps = by_marker(shown.decode())
        assert steps["1"] == steps["2"] == ""
        assert [(f["name"], f["status"], f["zone"]) for f in json_values(steps["3"])] == [
            ("hello.txt", "stored", "USA")
        ]
        assert steps["4"] == "hello, world\n"
        link, public = steps["5"].split("\n", 1)
        assert re.fullmatch(rf"{re.escape(url)}/s/[\w-]{{43}}", link), link
        [view] = json_values(public)
        assert (view["name"], view["size"], view["has_password"]) == ("hello.txt", 13, False) and view["expires_at"]
        (edited,) = json_values(steps["6"])
        assert (edited["max_downloads"], edited["state"], [f["name"] for f in edited["files"]]) == (
            5,
            "active",
            ["hello.txt"],
        )
        assert re.search(r"^hello\.txt +\d{4}-\d\d-\d\d \d\d:\d\d:\d\d +13$", steps["7"], re.M), steps["7"]
        listed, where = json_values(steps["block 2"])
        assert [s["name"] for s in listed["items"]] == [site.name for site in ORIGINAL_LAYOUT]
        assert {(i["server"]["name"], i["server"]["zone"]) for i in where["items"]} == {
            ("newyork", "USA"),
            ("dallas", "USA"),
        }
        assert {i["status"] for i in where["items"]} <= {"present", "pending"}
        assert steps["block 3"] == steps["8"] == ""
        [sent] = json_values(steps["9"])  # (the PUT prints nothing, /complete the file)
        assert (sent["name"], sent["status"], sent["zone"]) == ("hello (2).txt", "stored", "Africa")
        [received] = json_values(steps["10"])
        assert [(f["name"], f["received_via"]) for f in received["items"]] == [("hello (2).txt", sent["received_via"])]
        trash, restored = json_values(steps["11"])
        assert [f["name"] for f in trash["items"]] == ["hello.txt"] and trash["trash_days"] == 7
        assert (restored["name"], restored["status"]) == ("hello.txt", "stored")
        # The upload command: the big file in parts, stored, and a share link that serves its bytes.
        assert steps["block 4"] == ""
        stored = re.fullmatch(r"stored big\.bin \(70,000,000 bytes\) as [0-9a-f-]{36}: (\S+)/s/(\S+)\n", steps["12"])
        assert stored is not None and stored[1] == url, steps["12"]
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{url}/api/v1/public/links/{stored[2]}/download", json={}) as resp:
                assert resp.status == 200, await resp.text()
                got = await resp.json()
            async with http.get(got["url"]) as resp:
                digest = hashlib.sha256()
                async for chunk in resp.content.iter_chunked(1 << 20):
                    digest.update(chunk)
        assert digest.digest() == hashlib.sha256((tmp_path / "big.bin").read_bytes()).digest()
    finally:
        proc.send_signal(signal.SIGINT)
        rest = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, out + rest[0].decode()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as http:
        for endpoint in s3_endpoints:  # every S3 server it started is gone
            try:
                async with http.get(endpoint):
                    raise AssertionError(f"{endpoint} still answers after the demo stopped")
            except aiohttp.ClientConnectionError:
                pass
    assert (tmp_path / "demo" / "cdnstore.sqlite3").exists()


def test_jobs_and_scrub_commands_work_on_the_database(tmp_path: Path) -> None:
    assert cdnstore("init", cwd=tmp_path).returncode == 0
    listed = cdnstore("jobs", "list", cwd=tmp_path)
    assert listed.returncode == 0 and "0 job(s)" in listed.stderr
    failed = cdnstore("jobs", "list", "--status", "failed", cwd=tmp_path)
    assert failed.returncode == 0
    missing = cdnstore("jobs", "retry", "00000000-0000-0000-0000-00000000002a", cwd=tmp_path)
    assert missing.returncode == 1 and "job_not_found" in missing.stderr
    scrubbed = cdnstore("scrub", cwd=tmp_path)
    assert scrubbed.returncode == 0 and "scrubbed 0 server(s); no drift" in scrubbed.stdout


async def test_init_serve_user_add_jobs_scrub_and_backup_work_on_postgresql(
    tmp_path: Path, daemon_port: int, daemon: Any, pg_cluster: Any
) -> None:
    from daemonproc import admin_session, write_config

    url = pg_cluster.fresh("template1")  # an empty database: init creates the schema
    try:
        config = write_config(tmp_path, daemon_port, database={"url": url})
        env = {"CDNSTORE_CONFIG": str(config)}
        first = cdnstore("init", cwd=tmp_path, env=env)
        assert first.returncode == 0 and "PostgreSQL database (database.url): version 0 ->" in first.stdout, first
        assert "up to date" in cdnstore("init", cwd=tmp_path, env=env).stdout
        await daemon.start()
        async with aiohttp.ClientSession(base_url=daemon.url) as http:
            admin = await admin_session(daemon, http)  # `user add` beside the serving daemon, then a login
            assert [u["username"] for u in (await admin.get("/api/v1/users")).expect(200)["items"]] == ["root"]
        listed = cdnstore("jobs", "list", cwd=tmp_path, env=env)
        assert listed.returncode == 0 and "0 job(s)" in listed.stderr
        missing = cdnstore("jobs", "retry", "00000000-0000-0000-0000-00000000002a", cwd=tmp_path, env=env)
        assert missing.returncode == 1 and "job_not_found" in missing.stderr
        scrubbed = cdnstore("scrub", cwd=tmp_path, env=env)
        assert scrubbed.returncode == 0 and "scrubbed 0 server(s); no drift" in scrubbed.stdout
        backup = cdnstore("backup", str(tmp_path / "copy.sqlite3"), cwd=tmp_path, env=env)
        assert backup.returncode == 1 and "pg_dump" in backup.stderr
        assert not (tmp_path / "cdnstore.sqlite3").exists()  # nothing went to SQLite's path
    finally:
        daemon.kill()
        pg_cluster.drop(url)

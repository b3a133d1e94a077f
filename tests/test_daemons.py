"""Several `cdnstore serve` daemons on one PostgreSQL database serve one service: what one daemon is told,
the others obey within 2 seconds, and the throttles count across them (real daemons, real PostgreSQL)."""

from __future__ import annotations

import asyncio
import contextlib
import re
import signal
import socket
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from apihelp import DATA_SMALL, PASSWORD, US_IP, Answer, Api, Session, fetch, from_ip, put_bytes, wait_for
from clihelp import cdnstore, start_demo
from daemonproc import Cluster
from webhook_receiver import Receiver
from weedbed import unused_port

from cdnstore import appkeys
from cdnstore.changes import CHECK_INTERVAL, SESSIONS, CacheSync
from cdnstore.db.postgres import PostgresDatabase
from cdnstore.demo import DEMO_PASSWORD
from cdnstore.seaweed import WeedCluster
from cdnstore.tasks import running

pytestmark = [pytest.mark.timeout(120)]
ON_POSTGRES = pytest.mark.parametrize("engine", ["postgres"])  # (the database_url fixture follows it)

PROMISE = 2.0  # seconds within which every daemon obeys a change made through another (the contract)


async def obeyed(daemon_b: Callable[[], Awaitable[bool]], what: str) -> float:
    """Seconds until `daemon_b()` says daemon B obeys the change just made through A (asked every 20 ms),
    asserted to be within the promise."""
    started = time.monotonic()
    while not await daemon_b():
        assert time.monotonic() - started < PROMISE, f"daemon B still ignores that {what} after {PROMISE} s"
        await asyncio.sleep(0.02)
    return time.monotonic() - started


def refused(answer: Answer) -> bool:
    if answer.status == 200:
        return False
    answer.problem(401, "unauthorized")
    return True


@ON_POSTGRES
async def test_two_daemons_on_one_database_serve_the_same_files(
    tmp_path: Path, database_url: str, daemon_port: int, weed: WeedCluster, bucket: str
) -> None:
    async with Cluster(tmp_path, database_url, 2, first_port=daemon_port, weed=weed, bucket=bucket) as cluster:
        a, b = cluster.admins
        uploaded = await a.upload("hello.txt", DATA_SMALL)
        file_id = uploaded["file"]["id"]
        (await a.post(f"/api/v1/files/{file_id}/complete")).expect(200)
        assert (await b.wait_stored(file_id))["name"] == "hello.txt"
        link = (await b.get(f"/api/v1/files/{file_id}/download")).expect(200)
        status, body, _ = await fetch(link["url"])
        assert (status, body) == (200, DATA_SMALL)
        assert sorted(s["name"] for s in (await b.get("/api/v1/servers")).expect(200)["items"]) == sorted(
            cluster.servers
        )


@ON_POSTGRES
async def test_a_server_turned_off_through_one_daemon_takes_no_uploads_on_the_other_within_2_seconds(
    tmp_path: Path, database_url: str, daemon_port: int, weed: WeedCluster, bucket: str
) -> None:
    async with Cluster(tmp_path, database_url, 2, first_port=daemon_port, weed=weed, bucket=bucket) as cluster:
        a, b = cluster.admins
        first = (await b.announce("before.txt", DATA_SMALL, ip=US_IP))["upload"]["server"]["name"]
        off = cluster.servers[first]["id"]
        (await a.patch(f"/api/v1/servers/{off}", json={"is_on": False})).expect(200)
        tries = iter(range(1000))

        async def elsewhere() -> bool:
            announced = await b.announce(f"after-{next(tries)}.txt", DATA_SMALL, ip=US_IP)
            return bool(announced["upload"]["server"]["name"] != first)

        await obeyed(elsewhere, f"{first} is off")
        assert (await b.get(f"/api/v1/servers/{off}")).expect(200)["is_on"] is False
        # And back on, the other way round: B's change, A obeys.
        (await b.patch(f"/api/v1/servers/{off}", json={"is_on": True})).expect(200)

        async def on_again() -> bool:
            return bool((await a.get(f"/api/v1/servers/{off}")).expect(200)["is_on"])

        await obeyed(on_again, f"{first} is on again")


async def bob_made_through_a(cluster: Cluster) -> tuple[Session, dict[str, Any], Api]:
    """The admin's session on daemon A, the user bob made through it (his answer), and daemon B's API."""
    a, _ = cluster.admins
    made = (await a.post("/api/v1/users", json={"username": "bob", "password": PASSWORD})).expect(201)
    return a, dict(made), cluster.apis[1]


@ON_POSTGRES
async def test_a_session_ended_through_one_daemon_is_refused_by_the_other_within_2_seconds(
    tmp_path: Path, database_url: str, daemon_port: int
) -> None:
    async with Cluster(tmp_path, database_url, 2, first_port=daemon_port) as cluster:
        a, made, api_b = await bob_made_through_a(cluster)
        api_a = cluster.apis[0]
        # Logout through A of a session that B has served (so B holds it as live).
        bob = await api_b.login("bob")
        (await bob.get("/api/v1/me")).expect(200)
        (await api_a.call("POST", "/api/v1/auth/logout", json={"refresh_token": bob.refresh})).expect(204)

        async def logged_out() -> bool:
            return refused(await bob.get("/api/v1/me"))

        await obeyed(logged_out, "bob logged out")
        # A new password set through A ends bob's other sessions on B too.
        bob = await api_b.login("bob")
        (await bob.get("/api/v1/me")).expect(200)
        (await a.patch(f"/api/v1/users/{made['id']}", json={"password": "a brand new password"})).expect(200)

        async def password_changed() -> bool:
            return refused(await bob.get("/api/v1/me"))

        await obeyed(password_changed, "bob's password changed")
        # A user's permissions changed through A: B answers with the new ones.
        bob = await api_b.login("bob", "a brand new password")
        (await a.patch(f"/api/v1/users/{made['id']}", json={"permissions": []})).expect(200)

        async def permissions_changed() -> bool:
            return bool((await bob.get("/api/v1/me")).expect(200)["permissions"] == [])

        await obeyed(permissions_changed, "bob's permissions changed")


@ON_POSTGRES
async def test_an_api_key_revoked_through_one_daemon_is_refused_by_the_other_within_2_seconds(
    tmp_path: Path, database_url: str, daemon_port: int
) -> None:
    async with Cluster(tmp_path, database_url, 2, first_port=daemon_port) as cluster:
        a, made, api_b = await bob_made_through_a(cluster)
        bob = await cluster.apis[0].login("bob")

        async def key_checked_by_b() -> Session:
            """A new key of bob's, used once through B (so that B holds it as checked)."""
            on_b = Session(api_b, (await bob.key("read")).tokens)
            (await on_b.get("/api/v1/me")).expect(200)
            return on_b

        script = await key_checked_by_b()
        (await bob.delete(f"/api/v1/me/keys/{script.tokens['id']}")).expect(204)

        async def revoked() -> bool:
            return refused(await script.get("/api/v1/me"))

        await obeyed(revoked, "bob's key was revoked")
        # Disabling bob through A ends his keys on B too, for good.
        script = await key_checked_by_b()
        (await a.patch(f"/api/v1/users/{made['id']}", json={"is_disabled": True})).expect(200)
        await obeyed(revoked, "bob was disabled")
        (await a.patch(f"/api/v1/users/{made['id']}", json={"is_disabled": False})).expect(200)
        (await script.get("/api/v1/me")).problem(401, "unauthorized")


@ON_POSTGRES
async def test_a_link_revoked_through_one_daemon_is_gone_on_the_other_within_2_seconds(
    tmp_path: Path, database_url: str, daemon_port: int, weed: WeedCluster, bucket: str
) -> None:
    async with Cluster(tmp_path, database_url, 2, first_port=daemon_port, weed=weed, bucket=bucket) as cluster:
        a, _ = cluster.admins
        _, api_b = cluster.apis
        file_id = (await a.upload("shared.txt", DATA_SMALL))["file"]["id"]
        link = (await a.post(f"/api/v1/files/{file_id}/links", json={})).expect(201)
        (await api_b.call("GET", f"/api/v1/public/links/{link['token']}")).expect(200)
        (await a.delete(f"/api/v1/files/{file_id}/links/{link['id']}")).expect(204)

        async def gone() -> bool:
            answer = await api_b.call("GET", f"/api/v1/public/links/{link['token']}")
            return answer.status == 404 and bool(answer.problem(404, "link_not_found"))

        await obeyed(gone, "the link was revoked")


@ON_POSTGRES
async def test_a_webhook_added_through_one_daemon_takes_the_events_the_other_records_within_2_seconds(
    tmp_path: Path, database_url: str, daemon_port: int, weed: WeedCluster, bucket: str
) -> None:
    """Each daemon emits a user's event only where its copy of the subscriptions says a webhook takes it: B's
    copy learns of A's new webhook through the `webhooks` counter (changes.py)."""
    folder = tmp_path / "receiver"
    folder.mkdir()
    receiver = Receiver(folder, unused_port())
    await receiver.start()
    hooks = {"allow_private": True, "poll_interval": 0.1}  # (the receiver is on 127.0.0.1)
    try:
        async with Cluster(
            tmp_path, database_url, 2, first_port=daemon_port, weed=weed, bucket=bucket, webhooks=hooks
        ) as cluster:
            a, _ = cluster.admins
            _, api_b = cluster.apis
            file_id = (await a.upload("shared.txt", DATA_SMALL))["file"]["id"]
            (await a.post(f"/api/v1/files/{file_id}/complete")).expect(200)
            link = (await a.post(f"/api/v1/files/{file_id}/links", json={})).expect(201)
            made = await a.post("/api/v1/webhooks", json={"url": receiver.url, "events": ["link.downloaded"]})
            hook = made.expect(201)

            async def emitted_by_b() -> bool:
                (await api_b.call("POST", f"/api/v1/public/links/{link['token']}/download", json={})).expect(200)
                return bool((await a.get(f"/api/v1/webhooks/{hook['id']}/deliveries")).expect(200)["items"])

            await obeyed(emitted_by_b, "a webhook takes link.downloaded")
            await wait_for(receiver.taken, "the event delivered")
    finally:
        await receiver.kill()


@ON_POSTGRES
async def test_failed_logins_on_two_daemons_add_up(tmp_path: Path, database_url: str, daemon_port: int) -> None:
    auth: dict[str, Any] = {"login_max_failures": 4}
    async with Cluster(tmp_path, database_url, 2, first_port=daemon_port, auth=auth) as cluster:
        a, _ = cluster.admins
        (await a.post("/api/v1/users", json={"username": "carol", "password": PASSWORD})).expect(201)
        wrong = {"username": "carol", "password": "not her password"}
        for api in (*cluster.apis, *cluster.apis):  # two wrong passwords on each daemon: four in all
            (await api.call("POST", "/api/v1/auth/login", json=wrong, headers=from_ip(US_IP))).problem(
                401, "invalid_credentials"
            )
        for api in cluster.apis:  # locked out on both, the right password too
            right = {"username": "carol", "password": PASSWORD}
            locked = (await api.call("POST", "/api/v1/auth/login", json=right, headers=from_ip(US_IP))).problem(
                429, "too_many_attempts"
            )
            assert locked["detail"].startswith("too many failed logins")


@ON_POSTGRES
async def test_a_change_whose_notification_is_lost_is_picked_up_by_the_check_every_second(database_url: str) -> None:
    db = PostgresDatabase(database_url)
    await db.open()
    reloaded: list[float] = []

    async def reload() -> None:
        reloaded.append(time.monotonic())

    sync = CacheSync(db)
    sync.on(SESSIONS, reload)
    try:
        async with running({"cache-sync": sync.run()}):
            await wait_for(lambda: reloaded, "the first check")  # (it reloads everything once)
            async with db.transaction() as tx:  # a change raising the counter, its NOTIFY never sent
                await tx.execute("INSERT INTO cache_versions (topic, version) VALUES ('sessions', 1)")
            changed = time.monotonic()
            await wait_for(lambda: len(reloaded) == 2, "the check to see the counter move", within=PROMISE)
            assert reloaded[1] - changed <= CHECK_INTERVAL + 0.5
    finally:
        await db.close()


async def test_a_registry_reload_that_read_before_a_change_never_undoes_it(
    api: Api, weed: WeedCluster, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reload woken by another daemon's change may read just before this daemon's own change commits and
    finish after it: the daemon must still see its own change."""
    registry, admin = api.app[appkeys.SERVERS], await api.user("root", admin=True)
    read, real = asyncio.Event(), registry.db.fetchall

    async def slow_once(sql: str, *args: Any, **kwargs: Any) -> Any:
        rows = await real(sql, *args, **kwargs)
        if sql.startswith("SELECT * FROM servers") and not read.is_set():
            read.set()  # this reload read before the change below; it finishes after the change's own
            # reload (or, when that waits for this one, a while later)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(5):
                    while not registry.all():
                        await asyncio.sleep(0.01)
        return rows

    monkeypatch.setattr(registry.db, "fetchall", slow_once)
    stale = asyncio.create_task(registry.load())
    await read.wait()
    server = await admin.add_server(weed, "capetown", bucket)
    await stale
    assert (await admin.get(f"/api/v1/servers/{server['id']}")).expect(200)["name"] == "capetown"


async def test_the_demo_with_two_daemons_serves_the_same_files_from_both(tmp_path: Path) -> None:
    port = unused_port()
    while not all(_free(p) for p in (port, port + 1)):
        port = unused_port()
    # The one-daemon demo's database, with a user of its own: the two daemons start from a copy of it.
    made = cdnstore(
        "user", "add", "carol", "--password-stdin", cwd=tmp_path, stdin=f"{PASSWORD}\n",
        env={"CDNSTORE_DATABASE_PATH": str(tmp_path / "demo" / "cdnstore.sqlite3")},
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    proc, out = await start_demo(tmp_path, port, "--daemons", "2")
    try:
        first, second = re.findall(r"running at (http://\S+)/", out)[0], re.findall(r"and at (http://\S+)/:", out)[0]
        assert (first, second) == (f"http://127.0.0.1:{port}", f"http://127.0.0.1:{port + 1}"), out
        assert "2 daemons on one PostgreSQL database" in out
        assert "copied the demo's database" in out and "what changes in this run is not kept" in out, out
        async with aiohttp.ClientSession() as http:
            for url in (first, second):
                await demo_login(http, url, "carol", PASSWORD)
            one, two = await demo_login(http, first), await demo_login(http, second)
            headers = {"Authorization": f"Bearer {one}"}
            body = {"name": "both.txt", "size": len(DATA_SMALL), "content_type": "text/plain"}
            async with http.post(f"{first}/api/v1/files", json=body, headers=headers) as resp:
                assert resp.status == 201, await resp.text()
                announced = await resp.json()
            assert await put_bytes(announced["upload"], DATA_SMALL) == 200
            file_id = announced["file"]["id"]
            async with http.post(f"{first}/api/v1/files/{file_id}/complete", headers=headers) as resp:
                assert resp.status == 200, await resp.text()
            headers = {"Authorization": f"Bearer {two}"}
            for url in (first, second):  # the second daemon's token is good on both
                async with http.get(f"{url}/api/v1/files/{file_id}/download", headers=headers) as resp:
                    assert resp.status == 200, await resp.text()
                    status, data, _ = await fetch((await resp.json())["url"])
                assert (status, data) == (200, DATA_SMALL)
    finally:
        proc.send_signal(signal.SIGINT)
        rest = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, out + rest[0].decode()
    assert "stopped" in rest[0].decode()
    assert await asyncio.to_thread(gone, re.findall(r"PostgreSQL cluster under (\S+) \.\.\.", out)[0])  # with the demo


async def demo_login(
    http: aiohttp.ClientSession, url: str, username: str = "admin", password: str = DEMO_PASSWORD
) -> str:
    async with http.post(f"{url}/api/v1/auth/login", json={"username": username, "password": password}) as resp:
        assert resp.status == 200, await resp.text()
        return str((await resp.json())["access_token"])


def gone(path: str) -> bool:
    return not Path(path).exists()


def _free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True

"""`cdnstore upload`, run as a user runs it (the installed command, a child process) against the test's
daemon and its real SeaweedFS servers: its help and its one-line refusals, a big file in parts resumed by
running the same command again after Ctrl-C, a share link, the progress bar on a terminal only, and an
exit status that says whether every file was stored."""

from __future__ import annotations

import asyncio
import hashlib
import os
import pty
import re
import signal
import sys
from pathlib import Path
from typing import Any

from apihelp import Api, Session, fetch, wait_for
from clihelp import clean_env
from faultproxy import fault_proxy

from cdnstore.seaweed import WeedCluster

MIB = 1 << 20
COMMAND = Path(sys.executable).parent / "cdnstore"  # the venv's, as `.venv/bin/cdnstore upload`


async def upload(
    *args: str, api: Api | None = None, token: str = "", cwd: Path | None = None, stderr_to: int | None = None
) -> tuple[int, str, str]:
    """Run `cdnstore upload ARGS` to its end: (exit status, stdout, stderr). The service and the token are
    given as a user gives them, in CDNSTORE_URL and CDNSTORE_TOKEN (`api` None: neither is set)."""
    proc = await start(*args, api=api, token=token, cwd=cwd, stderr_to=stderr_to)
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), (err or b"").decode()


async def start(
    *args: str, api: Api | None, token: str, cwd: Path | None = None, stderr_to: int | None = None
) -> asyncio.subprocess.Process:
    env = clean_env()
    if api is not None:
        env |= {"CDNSTORE_URL": f"http://127.0.0.1:{api.client.port}", "CDNSTORE_TOKEN": token}
    return await asyncio.create_subprocess_exec(
        str(COMMAND),
        "upload",
        *args,
        cwd=cwd,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE if stderr_to is None else stderr_to,
        preexec_fn=ctrl_c_reaches_it,
    )


def ctrl_c_reaches_it() -> None:
    """In the child: SIGINT as a terminal's foreground program gets it (a test run started in the background
    by a shell would hand down SIGINT ignored)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def write_random(path: Path, size: int) -> bytes:
    data = os.urandom(size)
    path.write_bytes(data)
    return data


async def only_newyork(make_api: Any, weed: WeedCluster, bucket: str, **overrides: Any) -> tuple[Api, Session]:
    """A daemon taking files over 5 MiB in parts, with one storage server; and its user, carol."""
    # (The verifier looks for uploads to read back every half second: a declared SHA-256 is soon checked.)
    api = await make_api(uploads={"multipart_threshold": 5 * MIB}, integrity={"verify_interval": 0.5})
    admin = await api.user("root", admin=True)
    await admin.add_server(weed, "newyork", bucket, **overrides)
    return api, await api.user("carol")


async def stored_as(user: Session, line: str, data: bytes) -> dict[str, Any]:
    """The file a `stored NAME (N bytes) as ID` line names: stored, and downloading as `data`."""
    file_id = re.search(r" as ([0-9a-f-]{36})", line)[1]  # type: ignore[index]
    file = dict((await user.get(f"/api/v1/files/{file_id}")).expect(200))
    assert file["status"] == "stored" and file["size"] == len(data)
    _, body = await user.download(file_id)
    assert hashlib.sha256(body).digest() == hashlib.sha256(data).digest()
    return file


async def test_help_names_every_option_and_variable_and_a_missing_one_is_a_one_line_error(tmp_path: Path) -> None:
    code, out, err = await upload("--help")
    assert code == 0
    for named in ("FILE", "--name", "--link", "--sha256", "--url", "--token", "--parallel"):
        assert named in out, named
    assert "CDNSTORE_URL" in out and "CDNSTORE_TOKEN" in out and "API key" in out

    (tmp_path / "a.txt").write_text("a")
    code, out, err = await upload("a.txt", cwd=tmp_path)
    assert code == 2 and err.count("\n") == 1 and "CDNSTORE_URL is not set" in err and "--url" in err, err
    proc = await asyncio.create_subprocess_exec(
        str(COMMAND), "upload", "a.txt", cwd=tmp_path, env={**clean_env(), "CDNSTORE_URL": "http://127.0.0.1:1"},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err_bytes = await proc.communicate()
    err = err_bytes.decode()
    assert proc.returncode == 2 and err.count("\n") == 1 and "CDNSTORE_TOKEN is not set" in err, err


async def test_a_big_file_goes_in_parts_and_the_same_command_again_resumes_after_ctrl_c(
    make_api: Any, weed: WeedCluster, bucket: str, tmp_path: Path
) -> None:
    async with fault_proxy(weed.instance("newyork").endpoint_url) as proxy:
        # The storage server is reached through a link slow enough to press Ctrl-C in the middle of an upload.
        api, carol = await only_newyork(make_api, weed, bucket, endpoint_url=proxy.url)
        data = write_random(tmp_path / "film.mov", 19 * MIB)  # parts of 5, 5, 5 and 4 MiB
        proxy.delay = 0.05  # ~1.3 MB/s a connection
        proc = await start("film.mov", "--parallel", "2", api=api, token=carol.access, cwd=tmp_path)

        async def some_parts_arrived() -> int:
            found = (await carol.get("/api/v1/files?q=film.mov")).expect(200)["items"]
            if not found:
                return 0
            view = await carol.get(f"/api/v1/files/{found[0]['id']}/upload")
            return len(view.body["uploaded"]) if view.status == 200 else 0

        held = await wait_for(some_parts_arrived, "a first part to arrive", within=60, every=0.05)
        proc.send_signal(signal.SIGINT)  # Ctrl-C
        _, said = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 130 and "run the same command again to resume" in said.decode(), said
        assert "Traceback" not in said.decode()
        assert held < 4

        proxy.heal()
        code, out, err = await upload("film.mov", api=api, token=carol.access, cwd=tmp_path)
        assert code == 0, out + err
        resumed = re.search(r"resuming film\.mov: (\d) of 4 parts already on newyork, sending the other (\d)", err)
        assert resumed is not None and int(resumed[1]) >= held and int(resumed[1]) + int(resumed[2]) == 4, err
        await stored_as(carol, out, data)
    assert len((await carol.get("/api/v1/files")).expect(200)["items"]) == 1  # the same file, not a second


async def test_a_token_refused_in_the_middle_is_said_in_a_line_and_a_new_one_resumes(
    make_api: Any, weed: WeedCluster, bucket: str, tmp_path: Path
) -> None:
    """An access token's session ended during an upload (a logout elsewhere, an expiry): one line says so,
    and the same command with a new token goes on from what the server holds."""
    async with fault_proxy(weed.instance("newyork").endpoint_url) as proxy:
        api, carol = await only_newyork(make_api, weed, bucket, endpoint_url=proxy.url)
        data = write_random(tmp_path / "backup.tar", 19 * MIB)
        proxy.delay = 0.05
        proc = await start("backup.tar", "--parallel", "2", api=api, token=carol.access, cwd=tmp_path)

        async def a_part_arrived() -> bool:
            found = (await carol.get("/api/v1/files?q=backup.tar")).expect(200)["items"]
            view = await carol.get(f"/api/v1/files/{found[0]['id']}/upload") if found else None
            return view is not None and view.status == 200 and bool(view.body["uploaded"])

        await wait_for(a_part_arrived, "a first part to arrive", within=60, every=0.05)
        (await api.call("POST", "/api/v1/auth/logout", json={"refresh_token": carol.refresh})).expect(204)
        _, said = await asyncio.wait_for(proc.communicate(), 120)
        assert proc.returncode == 1, said
        assert said.decode().count("\n") == 1 and "backup.tar: CDNSTORE_TOKEN was refused" in said.decode(), said
        proxy.heal()
        again = await api.login("carol")
        code, out, err = await upload("backup.tar", api=api, token=again.access, cwd=tmp_path)
        assert code == 0 and "resuming backup.tar: " in err, out + err
        await stored_as(again, out, data)


async def test_link_prints_a_share_link_once_stored_and_sha256_declares_the_hash(
    make_api: Any, weed: WeedCluster, bucket: str, tmp_path: Path
) -> None:
    api, carol = await only_newyork(make_api, weed, bucket)
    small, big = write_random(tmp_path / "notes.txt", 1000), write_random(tmp_path / "disk.img", 6 * MIB)
    code, out, err = await upload(
        "notes.txt", "disk.img", "--link", "--sha256", api=api, token=carol.access, cwd=tmp_path
    )
    assert code == 0 and err == "", err  # piped: no progress bar, nothing else said
    lines = out.splitlines()
    assert len(lines) == 2 and lines[0].startswith("stored notes.txt (1,000 bytes) as "), out
    for line, data in zip(lines, (small, big), strict=True):
        file = await stored_as(carol, line, data)
        assert file["sha256"] == hashlib.sha256(data).hexdigest()
        token = line.rsplit("/s/", 1)[1]  # the link, last on the line
        got = (await api.call("POST", f"/api/v1/public/links/{token}/download", json={})).expect(200)
        status, body, _ = await fetch(got["url"])
        assert status == 200 and body == data


async def test_the_exit_status_is_0_only_when_every_file_was_stored_and_another_name_can_be_given(
    make_api: Any, weed: WeedCluster, bucket: str, tmp_path: Path
) -> None:
    api, carol = await only_newyork(make_api, weed, bucket)
    data = write_random(tmp_path / "report.pdf", 2000)
    code, out, err = await upload("report.pdf", "missing.pdf", api=api, token=carol.access, cwd=tmp_path)
    assert code == 1 and out.startswith("stored report.pdf ") and err.count("\n") == 1, (out, err)
    assert "missing.pdf: No such file or directory" in err
    code, out, err = await upload("report.pdf", "--name", "Q3 report.pdf", api=api, token=carol.access, cwd=tmp_path)
    assert code == 0 and out.startswith("stored Q3 report.pdf "), err
    await stored_as(carol, out, data)
    code, _, err = await upload("report.pdf", api=api, token="not-a-token", cwd=tmp_path)
    assert code == 1 and "CDNSTORE_TOKEN was refused" in err and err.count("\n") == 1, err


async def test_the_progress_bar_shows_on_a_terminal(
    make_api: Any, weed: WeedCluster, bucket: str, tmp_path: Path
) -> None:
    api, carol = await only_newyork(make_api, weed, bucket)
    write_random(tmp_path / "photos.zip", 11 * MIB)
    terminal, other_end = pty.openpty()
    try:
        code, out, _ = await upload("photos.zip", api=api, token=carol.access, cwd=tmp_path, stderr_to=other_end)
        os.close(other_end)
        shown = await asyncio.to_thread(read_all, terminal)
    finally:
        os.close(terminal)
    assert code == 0 and out.startswith("stored photos.zip ")
    assert re.search(r"\rphotos\.zip +100%  11\.5 MB of 11\.5 MB", shown), shown


def read_all(fd: int) -> str:
    """What a terminal showed, up to the moment its other end was closed."""
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # EIO: the other end is closed
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks).decode(errors="replace")

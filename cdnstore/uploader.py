"""`cdnstore upload FILE...`: files into a running cdnstore, as one of its users, through its public API.

The bytes go from this machine straight to the storage server cdnstore picks (presigned URLs), never
through cdnstore, streamed from the disk. A file over the service's multipart threshold goes in parts,
several at a time, each bound to its MD5 (the storage server refuses a part damaged on the way) and sent
again after a dropped connection or an expired URL. Run the same command again after Ctrl-C, a crash or a
reboot and it resumes: it finds the unfinished upload of that name and size (GET /files/{id}/upload lists
the parts the server holds) and sends only the parts the server lacks, or holds with other bytes.

Nothing here is cdnstore's own code but its API: it needs only the service's address and a token.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import os
import shutil
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import quote

import aiohttp

from .models import VersionStatus

API = "/api/v1"
URL_VARIABLE, TOKEN_VARIABLE = "CDNSTORE_URL", "CDNSTORE_TOKEN"
PARALLEL = 4
CHUNK = 1 << 20  # bytes read from the disk at a time
TRIES = 5  # per part and for the single PUT: a dropped connection, a 5xx or an expired URL costs one
COMPLETE_ROUNDS = 5  # /complete answering "parts missing": those are sent again, this many times
EPILOG = f"""\
environment:
  {URL_VARIABLE}    the cdnstore service, e.g. https://files.example.com (or --url)
  {TOKEN_VARIABLE}  an API key (cdn_...) or an access token of the user the files are for (or --token);
                  an access token from POST /api/v1/auth/login lasts 15 minutes (auth.access_token_ttl):
                  a longer upload fails with 401 and resumes when run again with a new one

Files over the service's multipart threshold (64 MiB by default) are sent in parts; run the same command
again after an interruption and only the missing parts are sent. The exit status is 0 only when every
file was stored."""


class Failed(Exception):
    """One file could not be stored; the message says why in a line (the command goes on with the next)."""


class Refused(Failed):
    """The service refused the caller (401, 403): the files after this one would be refused too."""


def parser_of(sub: Any) -> argparse.ArgumentParser:
    """The `upload` subcommand, added to the CLI's subparsers `sub`."""
    upload: argparse.ArgumentParser = sub.add_parser(
        "upload",
        help="upload files to a running cdnstore (big files in parts, resumed when run again)",
        description="Upload files to a running cdnstore as one of its users, straight to the nearest storage server.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    upload.add_argument("files", nargs="+", metavar="FILE", type=Path, help="the files to upload")
    upload.add_argument("--name", help="the name in cdnstore (one FILE only; default: the file's own name)")
    upload.add_argument("--link", action="store_true", help="create a share link once stored, and print it")
    upload.add_argument(
        "--sha256",
        action="store_true",
        help="hash the file first and declare its SHA-256: the storage server (or cdnstore) refuses other bytes",
    )
    upload.add_argument("--url", help=f"the cdnstore service (default: ${URL_VARIABLE})")
    upload.add_argument("--token", help=f"an API key or access token (default: ${TOKEN_VARIABLE})")
    upload.add_argument("--parallel", type=int, default=PARALLEL, help=f"parts sent at once (default {PARALLEL})")
    return upload


def run(args: argparse.Namespace) -> int:
    """The command: 0 when every file was stored, 1 when one was not, 2 for a usage error."""
    try:
        url, token = _required(args.url, URL_VARIABLE, "--url"), _required(args.token, TOKEN_VARIABLE, "--token")
        if args.name is not None and len(args.files) > 1:
            raise UsageError("--name names one file: give one FILE with it")
        if args.parallel < 1:
            raise UsageError("--parallel must be at least 1")
    except UsageError as exc:
        print(f"cdnstore upload: {exc}", file=sys.stderr)
        return 2
    try:
        return asyncio.run(_upload_all(url, token, args))
    except KeyboardInterrupt:
        print("\ncdnstore upload: interrupted; run the same command again to resume", file=sys.stderr)
        return 130


class UsageError(Exception):
    pass


def _required(given: str | None, variable: str, option: str) -> str:
    value = given or os.environ.get(variable, "")
    if not value:
        what = "the cdnstore service's address" if variable == URL_VARIABLE else "an API key or access token"
        raise UsageError(f"{variable} is not set: {what} (or {option}); see cdnstore upload --help")
    return value


async def _upload_all(url: str, token: str, args: argparse.Namespace) -> int:
    progress = Progress(sys.stderr)
    failed = 0
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=300)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        api = Api(http, url, token)
        for path in args.files:
            name = args.name or path.name
            try:
                file = await Upload(api, path, name, args.sha256, args.parallel, progress).run()
                line = f"stored {file['name']} ({file['size']:,} bytes) as {file['id']}"
                if args.link:
                    link = await api.call("POST", f"/files/{file['id']}/links", {}, ok=(201,))
                    line += f": {link['url']}"
                progress.clear()
                print(line, flush=True)
            except Failed as exc:
                progress.clear()
                print(f"cdnstore upload: {path}: {exc}", file=sys.stderr, flush=True)
                failed += 1
                if isinstance(exc, Refused):
                    failed = len(args.files)
                    break
    return 0 if not failed else 1


# ------------------------------------------------------------------------------------------ the API


class Api:
    """The service's API with the caller's token; every error a `Failed` with the service's own words."""

    def __init__(self, http: aiohttp.ClientSession, url: str, token: str) -> None:
        self.http, self.base = http, url.rstrip("/") + API
        self.headers = {"Authorization": f"Bearer {token}"}

    async def call(self, method: str, path: str, body: Any = None, *, ok: tuple[int, ...] = (200,)) -> Any:
        try:
            async with self.http.request(method, self.base + path, json=body, headers=self.headers) as resp:
                answer = await resp.json(content_type=None) if resp.status != 204 else None
                if resp.status in ok:
                    return answer
                raise _refusal(resp.status, answer if isinstance(answer, dict) else {})
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise Failed(f"{self.base}: cannot be reached ({exc.__class__.__name__}: {exc})") from None


class Problem(Failed):
    """An error answer of the API: its status, its stable code and what it says."""

    def __init__(self, status: int, code: str, detail: str, body: dict[str, Any]) -> None:
        super().__init__(f"{detail} ({status} {code})" if code else f"the service answered {status}")
        self.status, self.code, self.body = status, code, body


class RefusedProblem(Problem, Refused):
    pass


def _refusal(status: int, body: dict[str, Any]) -> Problem:
    code, detail = str(body.get("code", "")), str(body.get("detail") or body.get("title") or "")
    if status in (401, 403):
        hint = f"{TOKEN_VARIABLE} was refused: {detail}" if status == 401 else detail
        return RefusedProblem(status, code, hint, body)
    return Problem(status, code, detail, body)


# ------------------------------------------------------------------------------------------ one file


@dataclass
class Parts:
    """A multipart upload: its plan (part size, count, server) and what the server holds."""

    part_size: int
    count: int
    server: str
    held: set[int] = field(default_factory=set)

    def span(self, number: int, size: int) -> tuple[int, int]:
        """(offset, length) of part `number` in a file of `size` bytes."""
        offset = (number - 1) * self.part_size
        return offset, min(self.part_size, size - offset)


class Upload:
    def __init__(self, api: Api, path: Path, name: str, sha256: bool, parallel: int, progress: Progress) -> None:
        self.api, self.path, self.name, self.declare, self.parallel = api, path, name, sha256, parallel
        self.progress = progress
        self.size = 0
        self.declared: str | None = None  # the SHA-256 declared (--sha256)
        self.sending: dict[int, int] = {}  # bytes of each part on its way

    async def run(self) -> dict[str, Any]:
        try:
            stat = await asyncio.to_thread(self.path.stat)
        except OSError as exc:
            raise Failed(exc.strerror or str(exc)) from None
        if not self.path.is_file():
            raise Failed("not a regular file")
        self.size = stat.st_size
        self.progress.start(self.name, self.size)
        if self.declare:
            self.progress.note("hashing")
            self.declared = await asyncio.to_thread(_sha256_of, self.path)
        found = await self._unfinished()
        if found is not None:
            file_id, parts = found
            return await self._settled(await self._in_parts(file_id, parts))
        body: dict[str, Any] = {"name": self.name, "size": self.size}
        if self.declared:
            body["sha256"] = self.declared
        announced = await self.api.call("POST", "/files", body, ok=(200, 201))
        file_id, upload = announced["file"]["id"], announced["upload"]
        if upload["method"] == "multipart":
            plan = Parts(upload["part_size"], upload["parts"], upload["server"]["name"])
            return await self._settled(await self._in_parts(file_id, plan))
        return await self._settled(await self._in_one_put(file_id, upload))

    async def _settled(self, file: dict[str, Any]) -> dict[str, Any]:
        """The file once its new content is the one it serves. /complete says so at once, except for content
        cdnstore reads back before it serves it (a declared SHA-256 the storage server could not enforce,
        as a multipart upload's): that read comes within integrity.verify_interval (30 s by default)."""
        wait = 0.5
        while not (file["status"] == VersionStatus.STORED and self.declared in (None, file["sha256"])):
            if await self._rejected(file["id"]):
                raise Failed("cdnstore read its bytes back and found another SHA-256 than this file's: rejected")
            self.progress.note("waiting for cdnstore to read it back and check its SHA-256")
            await asyncio.sleep(wait)
            wait = min(2 * wait, 10.0)
            file = await self.api.call("GET", f"/files/{file['id']}")
        return file

    async def _rejected(self, file_id: str) -> bool:
        """Whether cdnstore rejected the content declared with this SHA-256 (history `file.corrupt`)."""
        if self.declared is None:
            return False
        page = await self.api.call("GET", "/history?event=file.corrupt&limit=100")
        return any(i["object_id"] == file_id and i["data"].get("sha256") == self.declared for i in page["items"])

    async def _unfinished(self) -> tuple[str, Parts] | None:
        """The caller's upload in parts of this name and size still going on its server, if there is one."""
        cursor: str | None = None
        while True:
            page = await self.api.call(
                "GET", f"/files?limit=1000&q={quote(self.name)}" + (f"&cursor={quote(cursor)}" if cursor else "")
            )
            for file in page["items"]:
                if (
                    file["name"] == self.name
                    and file["status"] == VersionStatus.UPLOADING
                    and file["size"] == self.size
                ):
                    view = await self._upload_view(file["id"])
                    if view is not None and view["method"] == "multipart":
                        return file["id"], await self._adopt(view)
            cursor = page["next_cursor"]
            if not cursor:
                return None

    async def _upload_view(self, file_id: str) -> dict[str, Any] | None:
        try:
            return dict(await self.api.call("GET", f"/files/{file_id}/upload"))
        except Problem as exc:
            if exc.status == 404:  # it just ended, or was given up
                return None
            raise

    async def _adopt(self, view: dict[str, Any]) -> Parts:
        """GET /upload's parts: those the server holds with this file's bytes (their ETag is the MD5 of the
        same part here) are not sent again; any other (the file changed meanwhile) is."""
        parts = Parts(view["part_size"], view["parts"], view["server"]["name"])
        for part in view["uploaded"]:
            offset, length = parts.span(part["number"], self.size)
            if part["size"] == length:
                md5 = await asyncio.to_thread(_md5_of, self.path, offset, length)
                if part["etag"].strip('"').lower() == md5.hex():
                    parts.held.add(part["number"])
        self.progress.say(
            f"resuming {self.name}: {len(parts.held)} of {parts.count} parts already on {parts.server}, "
            f"sending the other {parts.count - len(parts.held)}"
        )
        return parts

    # --- one PUT ---

    async def _in_one_put(self, file_id: str, upload: dict[str, Any]) -> dict[str, Any]:
        for attempt in range(1, TRIES + 1):
            try:
                await self._put(upload["url"], upload["headers"], 0, self.size, lambda done: self._shown(done))
                break
            except Failed as exc:
                if attempt == TRIES or not _worth_again(exc):
                    raise
                await asyncio.sleep(min(30, 2**attempt))
        return await self._complete(file_id, None)

    # --- in parts ---

    async def _in_parts(self, file_id: str, parts: Parts) -> dict[str, Any]:
        for _ in range(COMPLETE_ROUNDS):
            await self._send_missing(file_id, parts)
            try:
                return await self._complete(file_id, parts)
            except Problem as exc:
                missing = exc.body.get("missing") if exc.code == "upload_incomplete" else None
                if not missing:
                    raise
                parts.held -= set(missing)
        raise Failed(f"the storage server {parts.server} kept losing parts; run the command again to resume")

    async def _send_missing(self, file_id: str, parts: Parts) -> None:
        todo = [n for n in range(1, parts.count + 1) if n not in parts.held]
        self._shown_parts(parts)
        lanes = asyncio.Semaphore(self.parallel)

        async def one(number: int) -> None:
            async with lanes:
                await self._send_part(file_id, parts, number)

        try:
            async with asyncio.TaskGroup() as group:
                for number in todo:
                    group.create_task(one(number))
        except* Failed as failed:  # the first part that failed for good says why (the others were stopped)
            raise failed.exceptions[0] from None

    async def _send_part(self, file_id: str, parts: Parts, number: int) -> None:
        offset, length = parts.span(number, self.size)
        md5 = base64.b64encode(await asyncio.to_thread(_md5_of, self.path, offset, length)).decode()

        def sent(done: int) -> None:
            self.sending[number] = done
            self._shown_parts(parts)

        for attempt in range(1, TRIES + 1):
            signed = await self.api.call(
                "POST", f"/files/{file_id}/upload/parts", {"numbers": [number], "md5": {str(number): md5}}
            )
            item = signed["items"][0]
            try:
                await self._put(item["url"], item["headers"], offset, length, sent)
                parts.held.add(number)
                return
            except Failed as exc:
                if attempt == TRIES or not _worth_again(exc):
                    raise Failed(f"part {number}: {exc}") from None
                await asyncio.sleep(min(30, 2**attempt))
            finally:
                self.sending.pop(number, None)
                self._shown_parts(parts)

    # --- both ---

    async def _put(
        self, url: str, headers: dict[str, str], offset: int, length: int, sent: Callable[[int], None]
    ) -> None:
        """PUT `length` bytes of the file from `offset`, streamed, with exactly the headers given."""
        body = _read(self.path, offset, length, sent)
        try:
            async with self.api.http.put(url, data=body, headers=headers) as resp:
                if resp.status != 200:
                    text = await resp.text()
                    raise StorageRefused(resp.status, _s3_code(text))
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise Failed(f"the storage server could not be reached ({exc.__class__.__name__})") from None

    async def _complete(self, file_id: str, parts: Parts | None) -> dict[str, Any]:
        """POST /complete; for one PUT, again a few times while the server has not shown the object yet."""
        for attempt in range(1, TRIES + 1):
            try:
                return dict(await self.api.call("POST", f"/files/{file_id}/complete"))
            except Problem as exc:
                if parts is not None or exc.code != "upload_incomplete" or attempt == TRIES:
                    raise
                await asyncio.sleep(0.2 * attempt)
        raise AssertionError("unreachable")

    def _shown(self, done: int) -> None:
        self.progress.update(done)

    def _shown_parts(self, parts: Parts) -> None:
        held = sum(parts.span(n, self.size)[1] for n in parts.held)
        self.progress.update(min(self.size, held + sum(self.sending.values())))


class StorageRefused(Failed):
    """The storage server answered the PUT with an error (its S3 code)."""

    def __init__(self, status: int, code: str) -> None:
        super().__init__(f"the storage server answered {status}{f' {code}' if code else ''}")
        self.status, self.code = status, code


def _worth_again(exc: Failed) -> bool:
    """A dropped connection, a storage server's 5xx, a part damaged on the way or an expired URL (a new one
    is asked for each try): yes. Anything the service itself refused: no."""
    if isinstance(exc, StorageRefused):
        return exc.status >= 500 or exc.status == 403 or exc.code in ("BadDigest", "RequestTimeout")
    return not isinstance(exc, Problem)


def _s3_code(text: str) -> str:
    start = text.find("<Code>")
    return text[start + 6 : text.find("</Code>", start)] if start >= 0 else ""


async def _read(path: Path, offset: int, length: int, sent: Callable[[int], None]) -> AsyncIterator[bytes]:
    """The bytes [offset, offset + length) of the file, a chunk at a time, each read in a thread."""
    with await asyncio.to_thread(path.open, "rb") as f:
        await asyncio.to_thread(f.seek, offset)
        done = 0
        while done < length:
            chunk = await asyncio.to_thread(f.read, min(CHUNK, length - done))
            if not chunk:
                raise Failed("the file got shorter while it was being sent")
            done += len(chunk)
            yield chunk
            sent(done)


def _md5_of(path: Path, offset: int, length: int) -> bytes:
    digest = hashlib.md5()
    with path.open("rb") as f:
        f.seek(offset)
        while length > 0:
            chunk = f.read(min(CHUNK, length))
            if not chunk:
                break
            digest.update(chunk)
            length -= len(chunk)
    return digest.digest()


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


# ------------------------------------------------------------------------------------------ progress


class Progress:
    """One line on a terminal, redrawn at most ten times a second: the file, its share sent, the speed and
    the time left. Not on a terminal (piped, redirected, run by a script): nothing at all."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.shown = stream.isatty()
        self.name, self.size, self.done = "", 0, 0
        self.started, self.drawn = 0.0, 0.0

    def start(self, name: str, size: int) -> None:
        self.name, self.size, self.done = name, size, 0
        self.started = self.drawn = time.monotonic()
        self.update(0, force=True)

    def note(self, text: str) -> None:
        if self.shown:
            self._draw(f"{self.name}: {text}…")

    def say(self, text: str) -> None:
        """A line that stays (on a terminal above the progress line), piped or not."""
        self.clear()
        print(text, file=self.stream, flush=True)

    def update(self, done: int, *, force: bool = False) -> None:
        self.done = done
        now = time.monotonic()
        if not self.shown or (now - self.drawn < 0.1 and not force and done < self.size):
            return
        self.drawn = now
        rate = done / (now - self.started) if now - self.started > 0.5 else 0.0
        pct = 100 * done // self.size if self.size else 100
        text = f"{self.name}  {pct:3d}%  {_bytes(done)} of {_bytes(self.size)}"
        if rate > 0:
            left = (self.size - done) / rate
            text += f" · {_bytes(int(rate))}/s · {left:.0f} s left" if left < 90 else f" · {left / 60:.0f} min left"
        self._draw(text)

    def _draw(self, text: str) -> None:
        width = shutil.get_terminal_size((80, 24)).columns - 1
        self.stream.write("\r" + text[:width].ljust(width))
        self.stream.flush()

    def clear(self) -> None:
        if self.shown:
            self.stream.write("\r" + " " * (shutil.get_terminal_size((80, 24)).columns - 1) + "\r")
            self.stream.flush()


def _bytes(n: int) -> str:
    """1000-based, as the page shows sizes: "12.0 MB"."""
    if n < 1000:
        return f"{n} B"
    value = float(n)
    for unit in ("kB", "MB", "GB", "TB", "PB"):
        value /= 1000
        if value < 1000 or unit == "PB":
            return f"{value:.0f} {unit}" if value >= 100 else f"{value:.1f} {unit}"
    raise AssertionError("unreachable")

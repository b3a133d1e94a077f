"""Upload a file of any size to cdnstore in parallel parts, resuming an upload that was cut short.

    CDNSTORE_URL=https://files.example.org CDNSTORE_USERNAME=alice CDNSTORE_PASSWORD=... \\
        python -m cdnstore.examples.upload FILE [--name NAME] [--parallel 4]

Only aiohttp and the public API (docs/architecture.md, "Uploads"): the bytes go straight from this machine
to the storage server with presigned URLs, never through cdnstore. Run the same command again after a
dropped connection, a crash or a reboot: it finds the unfinished upload of that name (GET /upload lists
the parts the server already holds) and sends only the missing parts. Each part carries its MD5, so the
storage server refuses a part that was corrupted on the way. A small file is sent in one PUT.
Memory: `--parallel` parts at a time (5 MiB each up to a 48 GiB file; larger files have larger parts).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import io
import os
import sys
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp

API = "/api/v1"


class Client:
    def __init__(self, http: aiohttp.ClientSession, base: str) -> None:
        self.http, self.base, self.token = http, base.rstrip("/"), ""

    async def call(self, method: str, path: str, json: Any = None, ok: tuple[int, ...] = (200, 201)) -> Any:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        async with self.http.request(method, self.base + API + path, json=json, headers=headers) as resp:
            body = await resp.json(content_type=None) if resp.content_length != 0 else None
            if resp.status not in ok:
                raise SystemExit(f"{method} {path}: {resp.status} {body}")
            return body

    async def login(self, username: str, password: str) -> None:
        tokens = await self.call("POST", "/auth/login", {"username": username, "password": password})
        self.token = tokens["access_token"]


async def find_unfinished(api: Client, name: str, size: int) -> tuple[str, dict[str, Any]] | None:
    """The caller's upload of `name` still in progress with this size: (file id, GET /upload's answer)."""
    page = await api.call("GET", f"/files?q={quote(name)}&limit=1000")
    for file in page["items"]:
        if file["name"] == name and file["status"] == "uploading" and file["size"] == size:
            view = await api.call("GET", f"/files/{file['id']}/upload", ok=(200, 404))
            if view.get("method") == "multipart":
                return file["id"], view
    return None


def read_part(path: Path, number: int, part_size: int, size: int) -> bytes:
    with path.open("rb") as f:
        f.seek((number - 1) * part_size)
        return f.read(min(part_size, size - (number - 1) * part_size))


async def send_part(api: Client, path: Path, size: int, file_id: str, number: int, plan: dict[str, Any]) -> None:
    data = await asyncio.to_thread(read_part, path, number, plan["part_size"], size)
    md5 = base64.b64encode(hashlib.md5(data).digest()).decode()
    for attempt in range(5):  # a dropped connection: ask for a fresh URL and send the part again
        signed = await api.call(
            "POST", f"/files/{file_id}/upload/parts", {"numbers": [number], "md5": {str(number): md5}}
        )
        item = signed["items"][0]
        try:
            async with api.http.put(item["url"], data=io.BytesIO(data), headers=item["headers"]) as resp:
                if resp.status == 200:
                    return
                print(f"part {number}: {resp.status} {(await resp.text())[:200]}", file=sys.stderr)
        except aiohttp.ClientError as exc:
            print(f"part {number}: {exc!r}", file=sys.stderr)
        await asyncio.sleep(min(30, 2**attempt))
    raise SystemExit(f"part {number} could not be sent")


async def upload(api: Client, path: Path, name: str, parallel: int, max_parts: int | None) -> dict[str, Any]:
    size = (await asyncio.to_thread(path.stat)).st_size
    found = await find_unfinished(api, name, size)
    if found is None:
        answer = await api.call("POST", "/files", {"name": name, "size": size})
        file_id, plan, held = answer["file"]["id"], answer["upload"], set()
        if plan["method"] == "PUT":  # a small file: one PUT with exactly the given headers
            data = await asyncio.to_thread(path.read_bytes)
            async with api.http.put(plan["url"], data=io.BytesIO(data), headers=plan["headers"]) as resp:
                if resp.status != 200:
                    raise SystemExit(f"PUT: {resp.status} {await resp.text()}")
            return dict(await api.call("POST", f"/files/{file_id}/complete"))
    else:
        file_id, plan = found
        held = {p["number"] for p in plan["uploaded"]}
        print(f"resuming {name}: {len(held)} of {plan['parts']} parts already on {plan['server']['name']}")
    todo = [n for n in range(1, plan["parts"] + 1) if n not in held][:max_parts]
    gate = asyncio.Semaphore(parallel)

    async def one(number: int) -> None:
        async with gate:
            await send_part(api, path, size, file_id, number, plan)

    await asyncio.gather(*(one(n) for n in todo))
    print(f"sent {len(todo)} parts")
    if len(held) + len(todo) < plan["parts"]:
        raise SystemExit(3)  # (--max-parts: stopped on purpose; run again to resume)
    return dict(await api.call("POST", f"/files/{file_id}/complete"))


async def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m cdnstore.examples.upload", description=__doc__.split("\n")[0])
    parser.add_argument("file", type=Path)
    parser.add_argument("--name", help="the name in cdnstore (default: the file's own name)")
    parser.add_argument("--parallel", type=int, default=4, help="parts sent at once (default 4)")
    parser.add_argument("--max-parts", type=int, help="send at most this many parts, then stop (to try a resume)")
    args = parser.parse_args(argv)
    base = os.environ.get("CDNSTORE_URL", "http://127.0.0.1:8080")
    async with aiohttp.ClientSession() as http:
        api = Client(http, base)
        await api.login(os.environ["CDNSTORE_USERNAME"], os.environ["CDNSTORE_PASSWORD"])
        file = await upload(api, args.file, args.name or args.file.name, args.parallel, args.max_parts)
    print(f"stored {file['name']} ({file['size']} bytes) as {file['id']}")


if __name__ == "__main__":
    asyncio.run(main())

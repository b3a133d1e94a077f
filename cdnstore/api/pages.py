"""Routes: the bundled web page (`/`), the public share page (`/s/{token}`) and their static files.

The page is plain HTML, CSS and ES modules from the package folder `cdnstore/web/`, no build step. It
talks to the daemon only through the public API and keeps its tokens in memory. The HTML answers carry
a Content-Security-Policy that allows scripts, styles and images from this origin only (plus `data:`
images), and `connect-src http: https:` so that uploads can PUT to the storage servers' presigned URLs.

Static files are revalidated on every use (`Cache-Control: no-cache` with an ETag, so an unchanged file
costs a 304): the names carry no version, and an upgraded daemon must never run with yesterday's script.
"""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

from aiohttp import web

from ..errors import NotFound
from .endpoint import endpoint

WEB = Path(__file__).resolve().parent.parent / "web"
CSP = "default-src 'self'; connect-src 'self' http: https:; img-src 'self' data:; style-src 'self'"
PAGE_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    # The share page's address holds the link's token: never send it on to another site.
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-cache",
}
STATIC_HEADERS = {"X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache"}
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".json": "application/json",
    ".txt": "text/plain; charset=utf-8",
}


def _resolve(name: str) -> Path:
    """The file under web/ that `name` names; NotFound for anything else (`..`, hidden files, folders)."""
    parts = name.split("/")
    if not name or any(p in ("", ".", "..") or p.startswith(".") for p in parts):
        raise NotFound("no such file")
    path = (WEB / name).resolve()
    if not path.is_relative_to(WEB) or not path.is_file() or path.suffix not in CONTENT_TYPES:
        raise NotFound("no such file")
    return path


async def _file(request: web.Request, name: str, headers: dict[str, str]) -> web.Response:
    path = _resolve(name)
    body = await asyncio.to_thread(path.read_bytes)
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    out = {**headers, "ETag": etag, "Content-Type": CONTENT_TYPES[path.suffix]}
    if etag in {t.strip() for t in request.headers.get("If-None-Match", "").split(",")}:
        out.pop("Content-Type")
        return web.Response(status=304, headers=out)
    return web.Response(body=body, headers=out)


@endpoint("GET", "/", summary="The bundled web page", tag="pages", auth="none", responses={200: "text/html"})
async def index_page(request: web.Request) -> web.Response:
    """Files, uploads, share links, history and, for administrators, the storage servers."""
    return await _file(request, "index.html", PAGE_HEADERS)


@endpoint("GET", "/s/{token}", summary="The public page of a share link", tag="pages", auth="none",
          responses={200: "text/html"})
async def share_page(request: web.Request) -> web.Response:
    """Shows the shared file's name and size and downloads it, asking for the password when the link has one."""
    return await _file(request, "share.html", PAGE_HEADERS)


@endpoint("GET", "/static/{path:.+}", summary="The web page's scripts, styles and images", tag="pages",
          auth="none", responses={200: "application/octet-stream"}, errors=(404,))
async def static_file(request: web.Request) -> web.Response:
    name = request.match_info["path"]
    return await _file(request, name, PAGE_HEADERS if name.endswith(".html") else STATIC_HEADERS)

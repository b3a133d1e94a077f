"""Routes: the bundled web page (`/`), the public share page (`/s/{token}`), the public upload page of an
upload request (`/u/{token}`) and their static files.

The page is plain HTML, CSS and ES modules from the package folder `cdnstore/web/`, no build step. It
talks to the daemon only through the public API and keeps its tokens in memory. The HTML answers carry
a Content-Security-Policy that allows scripts and styles from this origin only, no `<base>`, forms posting to
this origin only and no framing of the pages. The main page PUTs uploads straight to the storage servers'
presigned URLs, so its `connect-src` names this origin and the origins the registered storage servers' URLs
are presigned for (their public_url, else endpoint_url), computed from the in-memory registry when the page is
asked for (a server added or moved shows in the next page load), and so does the public upload page's, which
PUTs a sender's files the same way; the share page connects to this origin only. The main and share pages show
previews (images, audio, video, PDF and plain text) from presigned GETs on the storage servers: their `img-
src`, `media-src` and `frame-src` name the same origins (no script runs from them: the daemon serves inline
only types that run nothing, previews.py, and text shows in a sandboxed frame). Static files are revalidated
on every use (`Cache-Control: no-cache` with an ETag, so an unchanged file costs a 304): the names carry no
version, and an upgraded daemon must never run with yesterday's script.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import re
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import urlsplit

from aiohttp import web

from .. import appkeys
from ..errors import NotFound
from ..models import Server
from ..presign import base_url
from .endpoint import Router

endpoint = Router()  # this module's routes, handed to app.py as ROUTES
ROUTES = endpoint.endpoints

WEB = Path(__file__).resolve().parent.parent / "web"
# A CSP source expression: scheme, host (name, IPv4 or bracketed IPv6) and port, nothing that could end
# the directive (`;`, `,`, spaces, quotes).
_origin_shape = re.compile(r"https?://[A-Za-z0-9.-]+(:\d{1,5})?|https?://\[[0-9A-Fa-f:.]+\](:\d{1,5})?").fullmatch
# nosniff and Server come with every answer (api/headers.py).
PAGE_HEADERS = {
    # The share and upload pages' addresses hold a token: never send it on to another site.
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-cache",
}
STATIC_HEADERS = {"Cache-Control": "no-cache"}
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


def origin(endpoint_url: str) -> str | None:
    """The origin a browser PUTs to for a server at `endpoint_url`; None for anything not safe to put in a
    policy."""
    try:
        parts = urlsplit(endpoint_url)
        port = parts.port
    except ValueError:
        return None
    host = (parts.hostname or "").lower()
    found = f"{parts.scheme.lower()}://{f'[{host}]' if ':' in host else host}{'' if port is None else f':{port}'}"
    return found if _origin_shape(found) else None


@functools.lru_cache(maxsize=64)
def _policy(origins: tuple[str, ...], connects: bool) -> str:
    storage = "".join(f" {o}" for o in origins)
    return (
        f"default-src 'self'; img-src 'self' data:{storage}; media-src 'self'{storage}; "
        f"frame-src 'self'{storage}; style-src 'self'; base-uri 'none'; form-action 'self'; "
        f"frame-ancestors 'none'; connect-src 'self'{storage if connects else ''}"
    )


def _origins(servers: Iterable[Server]) -> tuple[str, ...]:
    return tuple(sorted({o for s in servers if (o := _public_origin(s)) is not None}))


def page_csp(servers: Iterable[Server]) -> str:
    """The main page's policy: connect-src (uploads) and the previews' sources are this origin and every
    registered storage server's public address (the origin of its presigned URLs: public_url, else
    endpoint_url; the bucket's own host name for virtual-hosted addressing)."""
    return _policy(_origins(servers), True)


def share_csp(servers: Iterable[Server]) -> str:
    """The share page's policy: it connects to this origin only (its downloads are navigations); its
    previews come from the storage servers."""
    return _policy(_origins(servers), False)


def _public_origin(server: Server) -> str | None:
    try:
        return origin(base_url(server.public))
    except ValueError:  # (an address no presigned URL can be made for)
        return None


def _page_headers(request: web.Request, name: str) -> dict[str, str]:
    servers = request.app[appkeys.SERVERS].all()
    csp = share_csp(servers) if name == "share.html" else page_csp(servers)
    return {**PAGE_HEADERS, "Content-Security-Policy": csp}


def _resolve(name: str) -> Path:
    """The file under web/ that `name` names; NotFound for anything else (`..`, hidden files, folders, and
    names with control characters: a NUL (`%00`) made the file system call raise)."""
    parts = name.split("/")
    if not name.isprintable() or any(p in ("", ".", "..") or p.startswith(".") for p in parts):
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
    return await _file(request, "index.html", _page_headers(request, "index.html"))


@endpoint(
    "GET",
    "/s/{token}",
    summary="The public page of a share link",
    tag="pages",
    auth="none",
    responses={200: "text/html"},
)
async def share_page(request: web.Request) -> web.Response:
    """Shows the shared file's name and size and downloads it, asking for the password when the link has one."""
    return await _file(request, "share.html", _page_headers(request, "share.html"))


@endpoint(
    "GET",
    "/u/{token}",
    summary="The public upload page of an upload request",
    tag="pages",
    auth="none",
    responses={200: "text/html"},
)
async def upload_page(request: web.Request) -> web.Response:
    """Shows the request's message and limits, asks for its password when it has one, and sends the chosen
    files (big ones in parts, resumable) straight to the storage server nearest to the sender."""
    return await _file(request, "upload.html", _page_headers(request, "upload.html"))


@endpoint(
    "GET",
    "/static/{path:.+}",
    summary="The web page's scripts, styles and images",
    tag="pages",
    auth="none",
    responses={200: "application/octet-stream"},
    errors=(404,),
)
async def static_file(request: web.Request) -> web.Response:
    name = request.match_info["path"]
    return await _file(request, name, _page_headers(request, name) if name.endswith(".html") else STATIC_HEADERS)

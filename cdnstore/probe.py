"""What a storage server proves it does: the capability probe (the contract's "Storage vendors").

cdnstore trusts no S3 server for what it has not seen it do. The probe tries each thing on the server's own
bucket, through `endpoint_url`, under keys of its own (`.cdnstore-probe/<random>-...`), and leaves nothing
behind: the objects it made are deleted (every version of them in a versioned bucket), its multipart upload
aborted. The tries run side by side (a probe costs about three round trips):

- `checksum_enforced`: a presigned PUT signing `x-amz-checksum-sha256` of other bytes is refused (400
  BadDigest). SeaweedFS refuses it; Ceph RGW 16.2 stores the wrong bytes (200), and AWS documents that
  presigned URLs do not enforce it.
- `content_md5_enforced`: the same with `Content-MD5` on a part of a multipart upload.
- `conditional_write`: a second presigned PUT signing `If-None-Match: *` on the key the first one wrote is
  refused (412 PreconditionFailed).
- `cors`: a preflight from `http.public_url`'s origin (PUT, with the headers uploads carry) is allowed. When
  it is not, cdnstore adds a rule for that origin to the bucket's CORS configuration (PutBucketCors) and asks
  again; when the server refuses that too, `cors_rule` says exactly what rule to add.
- `versioning`: the bucket's state (`off`, `enabled`, `suspended`): deletes in a versioned bucket leave
  delete markers and free no space.
- `bucket_region` and `signing_region`: the bucket's location as the server reports it, and whether the
  server checks the region in a signature ("any": RGW signs with any; AWS names the one it expects).
- `events`: from the events cdnstore received (`events_state`): a probe of a registered server writes an
  object, whose event should arrive.

A try that fails to give an answer (a network error, an answer that proves nothing) leaves its finding
None: "not proved", which cdnstore treats as "no". Why the probe's failures are logged and not echoed: its
answers come from a remote server, and the registration that runs it must not read other hosts' answers
out to its caller.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import logging
import re
import uuid
from base64 import b64encode
from collections.abc import Awaitable
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from .clock import SYSTEM_CLOCK, Clock
from .errors import StorageError
from .models import Capabilities, S3Target, Server
from .presign import Presigner
from .storage_port import StoragePort
from .times import iso

log = logging.getLogger(__name__)

PREFIX = ".cdnstore-probe/"  # the keys probes write (and delete); an import never adopts them
_BYTES, _OTHER = b"cdnstore probe\n", b"not the declared bytes\n"
_URL_TTL = 300
# What a browser upload sends beside the body: the preflight asks for all of them (lower case, sorted).
UPLOAD_HEADERS = ("content-md5", "content-type", "if-none-match", "x-amz-checksum-sha256")
_MADE_UP_REGION = "cdnstore-probe-1"
_REGION_IN_ERROR = re.compile(r"<Region>([^<]{1,64})</Region>|expecting '([^']{1,64})'")
# What a region looks like: a server's answer is kept only in that shape (nothing else of it is shown).
_REGION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
# Events: a probe's object event is due within EVENTS_GRACE; an event stream that said nothing for EVENTS_WINDOW
# is not counted on (the daily probe writes an object: a working stream is never that quiet).
EVENTS_GRACE = 60.0  # seconds
EVENTS_WINDOW = 2 * 86400.0


def origin_of(url: str) -> str:
    """The origin (`scheme://host[:port]`) a browser sends for a page at `url`."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    default = {"http": 80, "https": 443}.get(parts.scheme)
    port = "" if parts.port in (None, default) else f":{parts.port}"
    return f"{parts.scheme}://{host}{port}"


def cors_rule(origin: str) -> dict[str, Any]:
    """The bucket CORS rule the bundled page needs: PUT (uploads, parts), GET and HEAD (downloads) from the
    page's origin, any request header, and the ETag readable (multipart uploads)."""
    return {
        "AllowedOrigins": [origin],
        "AllowedMethods": ["PUT", "GET", "HEAD"],
        "AllowedHeaders": ["*"],
        "ExposeHeaders": ["ETag"],
        "MaxAgeSeconds": 3600,
    }


def dump(found: Capabilities) -> str:
    return json.dumps(dataclasses.asdict(found), separators=(",", ":"))


def load(text: str | None) -> Capabilities | None:
    """servers.capabilities -> Capabilities (None: never probed; fields a later cdnstore added stay None)."""
    if not text:
        return None
    raw = json.loads(text)
    known = {f.name for f in dataclasses.fields(Capabilities)}
    return Capabilities(**{k: v for k, v in raw.items() if k in known})


def events_state(server: Server, now: str) -> str:
    """ "seen", "none" or "unknown": whether the server's object events reach cdnstore.

    "none" when a probe of the registered server wrote an object over a minute ago and no event came since;
    "seen" when an event came within two days (and after that probe); "unknown" before either can be said
    (a server only probed at its registration, before its name could receive events). `now`: the caller's
    clock's, which stamped the events and the probe."""
    seen, probed = server.events_seen_at, server.capabilities.events_probe_at if server.capabilities else None
    if probed is not None and (seen is None or seen < probed) and _before(probed, now, EVENTS_GRACE):
        return "none"
    if seen is not None and not _before(seen, now, EVENTS_WINDOW):
        return "seen"
    return "unknown"


def _before(when: str, now: str, by: float) -> bool:
    """`when` is more than `by` seconds before `now` (stored times, which compare as text)."""
    return iso(datetime.fromisoformat(when).timestamp() + by) < now


def _region(text: str | None) -> str | None:
    return text if text is not None and _REGION.fullmatch(text) else None


def _md5(data: bytes) -> str:
    return b64encode(hashlib.md5(data, usedforsecurity=False).digest()).decode()


class Prober:
    def __init__(self, storage: StoragePort, page_url: str, timeout: float, clock: Clock = SYSTEM_CLOCK) -> None:
        self.storage = storage
        self.clock = clock  # its stamps: when a probe is due again and events are awaited count from them
        self.origin = origin_of(page_url)  # the bundled page's (http.public_url): its uploads are cross-origin
        self.timeout = timeout

    async def probe(self, target: S3Target, *, registered: bool) -> Capabilities:
        """Try everything on the target's bucket; `registered`: the server's name receives events already
        (its probe's object event is then awaited)."""
        started = self.clock.now_iso()
        key = f"{PREFIX}{uuid.uuid4().hex}"
        written: list[str] = []
        checksum, md5, once, cors, versioning, location, signing = await asyncio.gather(
            self._checksum(target, f"{key}-sha256", written),
            self._content_md5(target, f"{key}-md5"),
            self._conditional_write(target, f"{key}-once", written),
            self._cors(target, f"{key}-cors"),
            self._try(self.storage.bucket_versioning(target), target, "versioning"),
            self._location(target),
            self._signing_region(target),
        )
        await self._clean(target, written, versioning)
        found = Capabilities(
            checked_at=started,
            checksum_enforced=checksum,
            content_md5_enforced=md5,
            conditional_write=once,
            cors=cors[0],
            cors_rule=cors[1],
            versioning=versioning,
            bucket_region=location,
            signing_region=signing,
            events_probe_at=started if registered and written else None,
        )
        log.info("probed %s/%s: %s", target.endpoint_url, target.bucket, dump(found))
        return found

    async def _try(self, work: Awaitable[Any], target: S3Target, what: str) -> Any:
        try:
            async with asyncio.timeout(self.timeout):
                return await work
        except (StorageError, TimeoutError) as exc:
            log.info("probe of %s/%s: %s not proved: %s", target.endpoint_url, target.bucket, what, exc)
            return None

    async def _put(self, url: str, headers: dict[str, str], body: bytes) -> tuple[int, str]:
        answer = await self.storage.send("PUT", url, headers=headers, body=body, timeout=self.timeout)
        return answer.status, answer.code

    async def _checksum(self, target: S3Target, key: str, written: list[str]) -> bool | None:
        declared = hashlib.sha256(_BYTES).hexdigest()
        url, headers = self.storage.presign_put(
            target, key, content_type="text/plain", size=len(_OTHER), expires_in=_URL_TTL, sha256=declared
        )
        got = await self._try(self._put(url, headers, _OTHER), target, "checksum enforcement")
        if got is None:
            return None
        status, code = got
        if 200 <= status < 300:
            written.append(key)
            return False
        return True if status == 400 and code in ("BadDigest", "XAmzContentChecksumMismatch", "InvalidDigest") else None

    async def _content_md5(self, target: S3Target, key: str) -> bool | None:
        upload_id = await self._try(self.storage.create_upload(target, key, content_type="text/plain"), target, "md5")
        if upload_id is None:
            return None
        try:
            url, headers = self.storage.presign_part(
                target, key, upload_id, 1, size=len(_OTHER), expires_in=_URL_TTL, md5=_md5(_BYTES)
            )
            got = await self._try(self._put(url, headers, _OTHER), target, "Content-MD5 enforcement")
        finally:
            await self._try(self.storage.abort_upload(target, key, upload_id), target, "abort of the md5 upload")
        if got is None:
            return None
        status, code = got
        if 200 <= status < 300:
            return False
        return True if status == 400 and code in ("BadDigest", "InvalidDigest") else None

    async def _conditional_write(self, target: S3Target, key: str, written: list[str]) -> bool | None:
        url, headers = self.storage.presign_put(
            target, key, content_type="text/plain", size=len(_BYTES), expires_in=_URL_TTL, if_none_match=True
        )
        first = await self._try(self._put(url, headers, _BYTES), target, "conditional write")
        if first is None:
            return None
        if not 200 <= first[0] < 300:  # the header itself is refused (e.g. 501): never sign it for this server
            log.info("probe of %s/%s: a PUT with If-None-Match answered %s", target.endpoint_url, target.bucket, first)
            return False
        written.append(key)
        second = await self._try(self._put(url, headers, _BYTES), target, "conditional write")
        if second is None:
            return None
        return bool(second[0] == 412)

    async def _cors(self, target: S3Target, key: str) -> tuple[bool | None, str | None]:
        """(whether the page's origin may upload, the rule to add when cdnstore could not add it)."""
        url = self.storage.presign_put(target, key, content_type="text/plain", size=0, expires_in=_URL_TTL)[0]
        url = url.split("?", 1)[0]
        allowed = await self._try(self._preflight(url), target, "CORS")
        if allowed is not False:
            return allowed, None
        rule = cors_rule(self.origin)
        rules = await self._try(self.storage.bucket_cors(target), target, "the bucket's CORS rules")
        await self._try(self.storage.set_bucket_cors(target, [*(rules or []), rule]), target, "a CORS rule")
        if await self._try(self._preflight(url), target, "CORS") is True:  # (whether or not that was refused)
            log.info("probe: added a CORS rule for %s to %s/%s", self.origin, target.endpoint_url, target.bucket)
            return True, None
        return False, json.dumps(rule, separators=(",", ":"))

    async def _preflight(self, url: str) -> bool:
        """Whether a browser on the page's origin would be let PUT an upload there (its preflight)."""
        answer = await self.storage.send(
            "OPTIONS",
            url,
            headers={
                "Origin": self.origin,
                "Access-Control-Request-Method": "PUT",
                "Access-Control-Request-Headers": ",".join(UPLOAD_HEADERS),
            },
            timeout=self.timeout,
        )
        h = answer.headers
        if not 200 <= answer.status < 300 or h.get("access-control-allow-origin") not in (self.origin, "*"):
            return False
        methods = {m.strip().upper() for m in h.get("access-control-allow-methods", "PUT").split(",")}
        headers = {m.strip().lower() for m in h.get("access-control-allow-headers", "").split(",")}
        return ("PUT" in methods or "*" in methods) and ("*" in headers or set(UPLOAD_HEADERS) <= headers)

    async def _signing_region(self, target: S3Target) -> str | None:
        """ "any" when a signature for a made-up region is accepted; else the region the server names in its
        refusal, else the target's own (the one its checks pass with)."""
        made_up = dataclasses.replace(target, region=_MADE_UP_REGION)
        url = Presigner(made_up).presign("GET", "", expires_in=_URL_TTL, query={"location": ""})
        answer = await self._try(self.storage.send("GET", url, timeout=self.timeout), target, "signing region")
        if answer is None:
            return None
        if 200 <= answer.status < 300:
            return "any"
        named = _REGION_IN_ERROR.search(answer.text)
        return _region(named[1] or named[2]) if named else target.region

    async def _location(self, target: S3Target) -> str | None:
        return _region(await self._try(self.storage.bucket_location(target), target, "location"))

    async def _clean(self, target: S3Target, written: list[str], versioning: str | None) -> None:
        """Leave nothing behind: the probe's objects, and in a bucket that keeps versions, every version."""
        for key in written:
            await self._try(self.storage.delete(target, key), target, f"the delete of {key}")
            if versioning != "off":
                await self._try(self.storage.delete_every_version(target, key), target, f"versions of {key}")

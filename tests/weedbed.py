"""What the tests' storage servers share: the S3 credentials of the session's SeaweedFS servers and Ceph RGW,
fresh bucket names, a streamed check of what a GET gives. (The beds themselves are in testbed/.)"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping

import aiohttp

ACCESS_KEY = "cdnkey"
SECRET_KEY = "cdnsecret12345"


def new_bucket() -> str:
    """A fresh, valid S3 bucket name (lowercase, 3..63 chars)."""
    return f"t-{uuid.uuid4().hex[:16]}"


async def md5_of_get(http: aiohttp.ClientSession, url: str) -> tuple[str, int, Mapping[str, str]]:
    """MD5 hex, byte count and headers of a GET, streamed (the body is never held whole)."""
    digest = hashlib.md5()
    count = 0
    async with http.get(url) as resp:
        assert resp.status == 200, await resp.text()
        async for chunk in resp.content.iter_chunked(1 << 20):
            digest.update(chunk)
            count += len(chunk)
        return digest.hexdigest(), count, resp.headers

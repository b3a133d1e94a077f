"""Which files a browser may show inline (previews in the share page and the owner's details dialog), and
with which Content-Type the storage server is asked to serve them.

Images, audio, video, PDF and plain text, each from a list of types browsers show as media or as a
document that runs nothing. HTML, SVG and XML (documents that run scripts), and every type not listed,
stay attachments whatever is asked: a file uploaded as `text/html` never renders from a storage server's
origin. The presigned GET names the Content-Type it is served with (S3's `response-content-type`), so what
a browser gets is the type checked here, not whatever the object was stored with.

The page keeps a copy of these lists to know when to offer a preview (`previewKind` in web/ui.js);
tests/test_web.py holds the two equal.
"""

from __future__ import annotations

import re

IMAGES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp", "image/avif", "image/bmp"})
AUDIO = frozenset({"audio/mpeg", "audio/mp4", "audio/ogg", "audio/wav", "audio/webm", "audio/flac", "audio/aac"})
VIDEO = frozenset({"video/mp4", "video/webm", "video/ogg"})
DOCUMENTS = frozenset({"application/pdf", "text/plain"})
_CHARSET = re.compile(r"charset\s*=\s*\"?([A-Za-z0-9_.:-]{1,40})\"?", re.IGNORECASE)


def inline_type(content_type: str) -> str | None:
    """The Content-Type a preview of a file stored as `content_type` is served with; None when the file
    must stay an attachment. Plain text keeps the charset it was declared with (UTF-8 when none)."""
    essence = content_type.partition(";")[0].strip().lower()
    if essence in IMAGES or essence in AUDIO or essence in VIDEO or essence == "application/pdf":
        return essence
    if essence == "text/plain":
        charset = _CHARSET.search(content_type)
        return f"text/plain; charset={charset[1] if charset else 'utf-8'}"
    return None

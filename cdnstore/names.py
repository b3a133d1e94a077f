"""What a file name may be: the one rule for names a user gives (api/schemas.py) and names cdnstore takes
from elsewhere (the keys of an imported bucket, imports.py)."""

from __future__ import annotations

import re
import unicodedata

MAX_NAME = 255  # characters of a file name, after NFC normalisation
# Invisible characters a name keeps where they do something: joiners within a word of another script or
# an emoji sequence (family emoji, Indic conjuncts, Persian words), and the tag letters of subdivision
# flags (black flag, tags, cancel tag). Anywhere else (e.g. beside ASCII) they could only disguise a name.
_JOINER = re.compile(r"(?<=[^\x00-\x7f\s])[\u200c\u200d](?=[^\x00-\x7f\s])")
_FLAG_TAGS = re.compile("(?<=\U0001f3f4)[\U000e0030-\U000e0039\U000e0061-\U000e007a]{1,6}\U000e007f")


def file_name(value: str) -> str:
    """The name as stored (NFC); ValueError saying what is wrong with it."""
    ascii_only = value.isascii()  # (most names: NFC changes no ASCII text, whose only such characters are Cc)
    if len(value) <= 4 * MAX_NAME and not ascii_only:  # NFC composes at most 4 code points into one
        value = unicodedata.normalize("NFC", value)
    if not 1 <= len(value) <= MAX_NAME:
        raise ValueError(f"must be 1 to {MAX_NAME} characters (after Unicode NFC normalisation)")
    if (not value.isprintable()) if ascii_only else _invisible(value):
        raise ValueError("must not contain control or invisible formatting characters")
    if "/" in value or "\\" in value:
        raise ValueError("must not contain / or \\ (a name, not a path)")
    if value in (".", "..") or value != value.strip():
        raise ValueError("must not be . or .. or start or end with white space")
    return value


def _invisible(value: str) -> bool:
    return any(unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") for c in _FLAG_TAGS.sub("", _JOINER.sub("", value)))

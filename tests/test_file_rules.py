"""The rules a file's name and lifetime follow, checked without servers: an expiry's bounds and default,
and the new name a sender's file takes when its name is taken."""

import pytest

from cdnstore.db import iso_in
from cdnstore.errors import Invalid
from cdnstore.files import Lifetime, sender_names
from cdnstore.names import MAX_NAME


def test_a_lifetime_bounds_and_defaults_expiry() -> None:
    free = Lifetime()
    assert free.expiry(None, False).at is None and free.expiry(None, True).at is None
    assert Lifetime(default=60).expiry(None, False).at is not None
    capped = Lifetime(longest=60, default=3600).expiry(None, False).at
    assert capped is not None and capped <= iso_in(60)  # a default above the maximum is cut to it
    with pytest.raises(Invalid):
        Lifetime(longest=60).expiry(None, True)
    with pytest.raises(Invalid):
        free.expiry(iso_in(-1), True)


def test_a_senders_new_name_keeps_its_extension_and_the_name_limit() -> None:
    assert sender_names("x.pdf")[:3] == ["x.pdf", "x (2).pdf", "x (3).pdf"]
    assert sender_names("archive")[1] == "archive (2)" and sender_names(".bashrc")[1] == ".bashrc (2)"
    long = "a" * 251 + ".pdf"
    renamed = sender_names(long)[-1]
    assert len(renamed) == MAX_NAME and renamed.endswith(" (50).pdf")
    assert sender_names("x.txt", "ab12")[1:] == ["x (ab12).txt"]

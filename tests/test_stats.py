"""The download statistics' day, worked out once a day on the download path."""

from __future__ import annotations

import time

import pytest

from cdnstore import stats


def test_todays_utc_day_is_cached_until_midnight_utc_and_no_longer(monkeypatch: pytest.MonkeyPatch) -> None:
    midnight = 1_795_000_000 - 1_795_000_000 % 86400  # a UTC midnight
    clock = [midnight - 0.5]
    monkeypatch.setattr(stats._DAY, "_cached", (-1, ""))  # (nothing remembered yet)
    monkeypatch.setattr(time, "time", lambda: clock[0])
    before = stats.today()
    assert before == time.strftime("%Y-%m-%d", time.gmtime(midnight - 1))
    clock[0] = midnight  # the next day begins
    after = stats.today()
    assert after == time.strftime("%Y-%m-%d", time.gmtime(midnight)) and after != before
    assert stats.utc_day() == time.strftime("%Y-%m-%d", time.gmtime())  # (the real clock: datetime's own)

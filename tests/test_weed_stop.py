"""How the SeaweedFS bed stops its `weed mini` servers: at once where weed's admin server hangs on its way out
(weed 4.48 does it about one stop in twenty, and then gave up only after 10 s), never while a server is still
stopping cleanly."""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from pathlib import Path

import pytest
from apihelp import wait_for
from weedbed import ACCESS_KEY, SECRET_KEY

from testbed.seaweed import ADMIN_HANG_AFTER, REST_HANG_AFTER, STOP_TIMEOUT, WeedCluster, WeedInstance

pytestmark = [pytest.mark.asyncio(loop_scope="session"), pytest.mark.timeout(120)]


# A stand-in for `weed mini` at SIGTERM, printing its shutdown board as weed does: "hang", its admin server
# hangs after the S3 gateway stopped (what weed 4.48 does about one stop in twenty); "slow", both stopped and
# the rest takes its time, as a clean stop on a busy machine may.
WEED_AT_SIGTERM = """
import signal, sys, time
def stop(*_):
    print("  Shutting down SeaweedFS Mini ...", flush=True)
    print("  S3           stopped   0.0s", flush=True)
    if sys.argv[1] == "rest-hangs":
        print("  Admin        stopped   0.0s", flush=True)
        print("  Filer        stopped   1.2s", flush=True)
        time.sleep(600)
    if sys.argv[1] == "slow":
        print("  Admin        stopped   0.0s", flush=True)
        time.sleep(3 * ADMIN_HANG_AFTER)
        sys.exit(0)
    time.sleep(600)
signal.signal(signal.SIGTERM, stop)
print("ready", flush=True)
time.sleep(600)
"""


async def stop_a_stand_in(tmp_path: Path, how: str) -> tuple[int | None, float]:
    """Start the stand-in as a cluster's instance, stop the cluster: (its exit code, seconds the stop took)."""
    inst = WeedInstance("stand-in", tmp_path, 0, 0, "http://127.0.0.1:1")
    with inst.output_path.open("ab") as out:
        inst.process = await asyncio.create_subprocess_exec(
            sys.executable, "-c", f"ADMIN_HANG_AFTER = {ADMIN_HANG_AFTER}\n{WEED_AT_SIGTERM}", how, stdout=out
        )
    cluster = WeedCluster(tmp_path, [inst.name], access_key=ACCESS_KEY, secret_key=SECRET_KEY)
    cluster._instances[inst.name] = inst  # (started by hand: the stand-in has no S3 to wait for)
    await wait_for(lambda: b"ready" in inst.output_path.read_bytes(), "the stand-in ready")
    started = time.monotonic()
    await cluster.stop()
    return inst.process.returncode, time.monotonic() - started


async def test_a_server_whose_admin_hangs_on_its_way_out_is_killed_at_once_and_quietly(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="testbed.seaweed"):
        code, took = await stop_a_stand_in(tmp_path, "hang")
    assert code == -9 and took < STOP_TIMEOUT / 2, (code, took)  # not the 10 s it took before
    assert "its admin server hangs on its way out" in caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text


async def test_a_server_whose_volume_server_or_master_hangs_after_the_filer_stopped_is_killed_quietly(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="testbed.seaweed"):
        code, took = await stop_a_stand_in(tmp_path, "rest-hangs")
    assert code == -9 and took < REST_HANG_AFTER + (STOP_TIMEOUT - REST_HANG_AFTER) / 2, (code, took)
    assert "its volume server or master hangs on its way out" in caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text


async def test_a_server_stopping_slowly_but_cleanly_is_waited_for(tmp_path: Path) -> None:
    code, took = await stop_a_stand_in(tmp_path, "slow")
    assert code == 0 and took >= 3 * ADMIN_HANG_AFTER  # never killed while its data parts stop

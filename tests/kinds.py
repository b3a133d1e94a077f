"""Every test is of exactly one kind, given by its module here (conftest's collection hook marks it).

- unit: in this process only (the API through aiohttp's test client included): no SeaweedFS or RGW, no
  `cdnstore serve` or other child process, no browser. `python3 dev.py test --fast` runs these.
- integration: real SeaweedFS or Ceph RGW servers, or cdnstore (the CLI, `cdnstore serve`, dev.py) as a process.
- faults: faults injected on purpose: killed processes or servers, cut or slowed connections, full disks.
- browser: the bundled page driven by Chromium.

A test module missing from KINDS stops the collection: a new file cannot escape its kind by accident.
"""

from __future__ import annotations

from pathlib import Path

import pytest

UNIT, INTEGRATION, FAULTS, BROWSER = "unit", "integration", "faults", "browser"
ALL = (UNIT, INTEGRATION, FAULTS, BROWSER)

KINDS = {
    "test_answers": UNIT,
    "test_auth": UNIT,
    "test_config": UNIT,
    "test_db": UNIT,
    "test_docs": UNIT,
    "test_endpoints": UNIT,
    "test_events": UNIT,
    "test_file_rules": UNIT,
    "test_geo": UNIT,
    "test_jobs": UNIT,
    "test_keys": UNIT,
    "test_kinds": UNIT,
    "test_layers": UNIT,
    "test_openapi": UNIT,
    "test_patch_changes": UNIT,
    "test_presign": UNIT,
    "test_problems": UNIT,
    "test_records": UNIT,
    "test_stats": UNIT,
    "test_users": UNIT,
    "test_web_types": UNIT,
    "test_zipstream": UNIT,
    "test_archives": INTEGRATION,
    "test_probe": UNIT,
    "test_replication_fast": UNIT,
    "test_time_fast": UNIT,
    "test_tables": UNIT,
    "test_webhook_queue": UNIT,
    "test_cli": INTEGRATION,
    "test_connections": INTEGRATION,
    "test_copy_database": INTEGRATION,
    "test_copy_streams": INTEGRATION,
    "test_daemons": INTEGRATION,
    "test_deploy": INTEGRATION,
    "test_devpy": INTEGRATION,
    "test_files": INTEGRATION,  # its in-memory side is marked unit by `s3` (tests/s3bed.py)
    "test_headers": INTEGRATION,
    "test_install": INTEGRATION,
    "test_integrity": INTEGRATION,  # its in-memory side: unit, by `s3`
    "test_idor": INTEGRATION,
    "test_leaks": INTEGRATION,
    "test_links": INTEGRATION,  # its in-memory side: unit, by `s3`
    "test_mixed_zone": INTEGRATION,
    "test_multipart": INTEGRATION,  # its in-memory side: unit, by `s3`
    "test_names": INTEGRATION,
    "test_oidc": INTEGRATION,
    "test_ops": INTEGRATION,
    "test_replication": INTEGRATION,  # its in-memory side: unit, by `s3`
    "test_requests": INTEGRATION,
    "test_schemathesis": INTEGRATION,
    "test_scrub": INTEGRATION,  # its in-memory side: unit, by `s3`
    "test_sealing": INTEGRATION,
    "test_serve": INTEGRATION,
    "test_servers": INTEGRATION,
    "test_storage": INTEGRATION,
    "test_storage_contract": INTEGRATION,  # its in-memory side is marked unit by its parameter
    "test_storage_events": INTEGRATION,
    "test_team": INTEGRATION,
    "test_trash": INTEGRATION,
    "test_upload_link": INTEGRATION,  # its in-memory side: unit, by `s3`
    "test_upload_command": INTEGRATION,
    "test_weed_stop": INTEGRATION,
    "test_vendors": INTEGRATION,
    "test_imports": INTEGRATION,
    "test_webhooks": INTEGRATION,
    "test_cluster_faults": FAULTS,
    "test_crash": FAULTS,
    "test_disk_full": FAULTS,
    "test_rgwbed": FAULTS,
    "test_faults": FAULTS,
    "test_slow_storage": FAULTS,
    "test_storage_faults": FAULTS,
    "test_webhook_faults": FAULTS,
    "test_web": BROWSER,
    "test_web_sharing": BROWSER,
    "test_web_requests": BROWSER,
    "test_web_webhooks": BROWSER,
}

# Modules of another kind some of whose tests are unit tests by their own mark (the in-memory side of the storage
# contract, marked by its parameter, and of the use-case modules, by the `s3` fixture's: tests/s3bed.py):
# `dev.py test --fast` selects those tests too.
PARTLY_UNIT = frozenset(
    {
        *("test_storage_contract", "test_files", "test_links", "test_integrity", "test_scrub"),
        *("test_multipart", "test_upload_link", "test_replication"),
    }
)

# Fixtures that start servers or processes: a unit test asking for one is in the wrong kind.
HEAVY_FIXTURES = frozenset({"weed", "rgw", "daemon", "idp"})


def kinds_of(item: pytest.Item) -> list[str]:
    return [mark.name for mark in item.iter_markers() if mark.name in ALL]


def mark_by_module(items: list[pytest.Item]) -> None:
    """Give each test its module's kind, unless the test or its module names one itself."""
    unknown = sorted({Path(str(item.path)).stem for item in items} - set(KINDS))
    if unknown:
        raise pytest.UsageError(f"tests/kinds.py gives no kind to {', '.join(unknown)}: add it to KINDS")
    for item in items:
        if not kinds_of(item):
            item.add_marker(getattr(pytest.mark, KINDS[Path(str(item.path)).stem]))


def misfiled(item: pytest.Item) -> str | None:
    """Why this test is not of exactly one kind, or a unit test that needs servers (None: it's fine)."""
    kinds = kinds_of(item)
    if len(kinds) != 1:
        return f"{item.nodeid}: kinds {kinds}, not exactly one"
    heavy = HEAVY_FIXTURES & set(getattr(item, "fixturenames", ()))
    if kinds == [UNIT] and heavy:
        return f"{item.nodeid}: a unit test that asks for {sorted(heavy)}"
    return None

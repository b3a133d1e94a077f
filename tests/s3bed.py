"""The S3 servers a use-case test runs on: the in-memory storage (testbed/memory_storage.py; a unit test, in
`dev.py test --fast`) or the session's real SeaweedFS (an integration test), behind the one shape tests use
(`instance(name).endpoint_url`, `target(name, bucket)`), as tests/test_storage_contract.py does for the port.

A module opts in by asking for `s3` (conftest's fixture, parametrised `memory` / `seaweedfs`) and its daemon
`s3_api`, and by being listed in kinds.PARTLY_UNIT. A test that needs what only a real server does (its own
webhooks, a vendor's quirk) carries `REAL_ONLY`, with its reason in a word beside it. A server killed and
restarted (`kill`, `restart`) is one on both sides: a real process, or an in-memory server that refuses every
call as a killed one does."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import pytest
from weedbed import ACCESS_KEY, SECRET_KEY

from cdnstore.models import S3Target
from cdnstore.storage_port import StoragePort
from testbed.demo import ORIGINAL_LAYOUT
from testbed.memory_storage import MemoryStorage

MEMORY, SEAWEEDFS = "memory", "seaweedfs"
PART_SIZE = 5 << 20  # the tests' jobs.part_size (conftest.make_config)

# The test runs on real SeaweedFS only (its `s3` parametrised so, overriding the fixture's two sides).
REAL_ONLY = pytest.mark.parametrize("s3", [SEAWEEDFS], indirect=True)


class Endpoint(Protocol):
    @property
    def endpoint_url(self) -> str: ...


class S3Bed(Protocol):
    """What tests ask of the servers they register: a WeedCluster, or the MemoryFleet below."""

    def instance(self, name: str) -> Endpoint: ...

    def target(self, name: str, bucket: str, *, region: str = "us-east-1") -> S3Target: ...

    async def kill(self, name: str) -> None: ...

    async def restart(self, name: str) -> None: ...


@dataclass(frozen=True)
class MemoryInstance:
    name: str
    endpoint_url: str


# Where each site of the original layout is in memory: an address of its own, where nothing listens.
MEMORY_ENDPOINTS = {site.name: f"http://127.0.0.1:{port}" for port, site in enumerate(ORIGINAL_LAYOUT, start=9100)}


def memory_site(url: str) -> str | None:
    """The site whose in-memory server a URL goes to (None: none of them)."""
    return next((name for name, endpoint in MEMORY_ENDPOINTS.items() if url.startswith(endpoint + "/")), None)


class MemoryFleet:
    """The original layout's servers as buckets of one in-memory storage (the storage serves its presigned
    URLs itself; `Api.put_bytes` then sends the daemon the event the site's SeaweedFS webhook would send)."""

    def __init__(self) -> None:
        self.storage = MemoryStorage(part_size=PART_SIZE)
        self._instances = {name: MemoryInstance(name, url) for name, url in MEMORY_ENDPOINTS.items()}

    def instance(self, name: str) -> MemoryInstance:
        return self._instances[name]

    def target(self, name: str, bucket: str, *, region: str = "us-east-1") -> S3Target:
        return S3Target(self.instance(name).endpoint_url, bucket, region, ACCESS_KEY, SECRET_KEY)

    async def kill(self, name: str) -> None:
        """The server goes down as a killed SeaweedFS does (WeedCluster.kill): every call to it is refused,
        `storage_unreachable`, and its health check finds it down; what it holds stays."""
        self.storage.down(self.instance(name).endpoint_url)

    async def restart(self, name: str) -> None:
        """The server answers again, holding what it held (WeedCluster.restart)."""
        self.storage.up(self.instance(name).endpoint_url)


def store_of(s3: S3Bed) -> StoragePort | None:
    """The storage a daemon on `s3` is built on: the fleet's in-memory one, or None (real S3 clients)."""
    return s3.storage if isinstance(s3, MemoryFleet) else None

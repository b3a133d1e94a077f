"""Several `cdnstore serve` daemons on one PostgreSQL database serve one service: what one daemon is told,
the others obey within 2 seconds, and the throttles count across them (real daemons, real PostgreSQL)."""

from __future__ import annotations

from pathlib import Path

import pytest
from apihelp import DATA_SMALL, fetch
from daemonproc import Cluster

from cdnstore.seaweed import WeedCluster

pytestmark = [pytest.mark.parametrize("engine", ["postgres"]), pytest.mark.timeout(120)]


async def test_two_daemons_on_one_database_serve_the_same_files(
        tmp_path: Path, database_url: str, daemon_port: int, weed: WeedCluster, bucket: str) -> None:
    async with Cluster(tmp_path, database_url, 2, first_port=daemon_port, weed=weed, bucket=bucket) as cluster:
        a, b = cluster.admins
        uploaded = await a.upload("hello.txt", DATA_SMALL)
        file_id = uploaded["file"]["id"]
        (await a.post(f"/api/v1/files/{file_id}/complete")).expect(200)
        assert (await b.wait_stored(file_id))["name"] == "hello.txt"
        link = (await b.get(f"/api/v1/files/{file_id}/download")).expect(200)
        status, body, _ = await fetch(link["url"])
        assert (status, body) == (200, DATA_SMALL)
        assert sorted(s["name"] for s in (await b.get("/api/v1/servers")).expect(200)["items"]) == \
            sorted(cluster.servers)

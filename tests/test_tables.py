"""The table gateways (cdnstore/tables/): each state change leaves only the state its WHERE names, and says
what it changed, so that a caller can tell a lost race; on both engines."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from cdnstore.config import DatabaseConfig
from cdnstore.db import Database, connect
from cdnstore.models import ReplicaStatus, VersionStatus
from cdnstore.tables import files, replicas, versions
from cdnstore.tables.files import Deleted

T0 = "2026-01-01T00:00:00.000Z"
T1 = "2026-01-02T00:00:00.000Z"
pytestmark = pytest.mark.parametrize("engine", ["sqlite", "postgres"])


@pytest.fixture
async def db(tmp_path: Path, database_url: str) -> AsyncIterator[Database]:
    """A user (1) and a server (1), on each engine (database_url: conftest.py). Not test_jobs.py's database:
    its rows take explicit ids, which PostgreSQL's identity columns would hand out again here."""
    database = connect(DatabaseConfig(path=str(tmp_path / "db.sqlite3"), url=database_url))
    await database.open()
    async with database.transaction() as tx:
        await tx.execute(
            "INSERT INTO users (uuid, username, password_hash, created_at, updated_at) "
            "VALUES ('u', 'alice', 'x', ?, ?)",
            (T0, T0),
        )
        await tx.execute(
            "INSERT INTO servers (uuid, name, endpoint_url, bucket, region, access_key, secret_key, location, zone,"
            " latitude, longitude, is_on, is_active, health, created_at, updated_at) VALUES "
            "('s1', 'server1', 'http://x', 'b', 'r', 'k', 's', 'l', 'USA', 0, 0, 1, 1, 'up', ?, ?)",
            (T0, T0),
        )
    yield database
    await database.close()


async def upload(db: Database, name: str) -> tuple[int, int]:
    """A new file and its upload, as an announcement makes them: (file id, version id)."""
    async with db.transaction() as tx:
        made = await files.create(tx, f"uuid-{name}", 1, name, None, T0, None)
        assert made is not None
        version_id = await versions.announce(
            tx, made.id, f"key-{name}", 10, "text/plain", 1, T0, None, None, None, None
        )
        await files.announced(tx, made.id, version_id, None, T0)
    return made.id, version_id


async def status_of(db: Database, version_id: int) -> str:
    return str(await db.fetchval("SELECT status FROM versions WHERE id = ?", (version_id,)))


async def test_a_version_given_up_is_not_stored_by_a_late_confirmation(db: Database) -> None:
    _, version_id = await upload(db, "a.txt")
    async with db.transaction() as tx:
        assert await versions.give_up(tx, version_id) == 1
        assert await versions.store(tx, version_id, T1, "etag", "USA", verify_pending=False) == 0
        assert await versions.give_up(tx, version_id) == 0
    assert await status_of(db, version_id) == VersionStatus.DELETED


async def test_superseding_changes_only_stored_versions_and_says_which(db: Database) -> None:
    _, stored = await upload(db, "a.txt")
    _, uploading = await upload(db, "b.txt")
    async with db.transaction() as tx:
        assert await versions.store(tx, stored, T1, "etag", "USA", verify_pending=False) == 1
        assert await versions.supersede(tx, [stored, uploading]) == [stored]
        assert await versions.supersede(tx, [stored]) == []
        assert await versions.delete(tx, [stored, uploading]) == [uploading]
    assert await status_of(db, stored) == VersionStatus.SUPERSEDED
    assert await status_of(db, uploading) == VersionStatus.DELETED


async def test_a_file_is_retired_only_once_it_has_no_content_left(db: Database) -> None:
    file_id, version_id = await upload(db, "a.txt")
    async with db.transaction() as tx:
        assert await files.retire_if_empty(tx, file_id, T1) is None  # (its upload may still arrive)
        await versions.give_up(tx, version_id)
        retired = await files.retire_if_empty(tx, file_id, T1)
        assert retired == Deleted(file_id, "uuid-a.txt", 1, "a.txt", None)
        assert await files.retire_if_empty(tx, file_id, T1) is None  # (gone already)
    stored_id, stored = await upload(db, "b.txt")
    async with db.transaction() as tx:
        await versions.store(tx, stored, T1, "etag", "USA", verify_pending=False)
        await files.make_current(tx, stored_id, stored, T1)
        assert await files.retire_if_empty(tx, stored_id, T1) is None  # (it has content)


async def test_a_replica_is_marked_corrupt_only_from_present_and_unchanged_since_it_was_read(db: Database) -> None:
    _, version_id = await upload(db, "a.txt")
    async with db.transaction() as tx:
        await versions.store(tx, version_id, T0, "etag", "USA", verify_pending=False)
        assert await replicas.uploaded(tx, 1, version_id, "etag") == 1
        assert await replicas.uploaded(tx, 1, version_id, "etag") == 0
        assert await replicas.mark_corrupt(tx, 1, version_id, verified_at=T0) == 0  # (read at another time)
        assert await replicas.mark_corrupt(tx, 1, version_id, verified_at=None) == 1
        assert await replicas.mark_corrupt(tx, 1, version_id, verified_at=None) == 0
        assert await replicas.still_good(tx, 1, version_id, T1) == 0
        assert await replicas.good_again(tx, 1, version_id, T1) == 1
    status = await db.fetchval("SELECT status FROM replicas WHERE version_id = ?", (version_id,))
    assert status == ReplicaStatus.PRESENT


async def test_deletions_say_which_files_they_changed_as_records_with_both_keys(db: Database) -> None:
    stored_id, stored = await upload(db, "a.txt")
    empty_id, _ = await upload(db, "b.txt")
    async with db.transaction() as tx:
        await versions.store(tx, stored, T0, "etag", "USA", verify_pending=False)
        await files.make_current(tx, stored_id, stored, T0)
        trashed = await files.trash(tx, [stored_id, empty_id], T1, "2026-02-01T00:00:00.000Z")
        deleted = await files.delete(tx, [stored_id, empty_id], T1)
        purged = await files.purge(tx, [stored_id, empty_id], T1)
    assert trashed == [Deleted(stored_id, "uuid-a.txt", 1, "a.txt", "2026-02-01T00:00:00.000Z")]
    assert deleted == [Deleted(empty_id, "uuid-b.txt", 1, "b.txt", None)]
    assert purged == [Deleted(stored_id, "uuid-a.txt", 1, "a.txt", None)]

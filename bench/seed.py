"""Databases built with set-based SQL that both engines take: a million files in seconds, no API involved."""

from __future__ import annotations

from typing import Any


async def seed_versions(tx: Any, count: int) -> None:
    """One user, 4 servers of zone "z" (on, active, up) and `count` files with one stored 1-byte version each:
    set-based SQL that both engines take (scenarios 5 and 10)."""
    now = "2026-01-01T00:00:00Z"
    await tx.execute(
        "INSERT INTO users (id, uuid, username, password_hash, created_at, updated_at) VALUES (1, 'u', 'u', 'x', ?, ?)",
        (now, now),
    )
    for sid in range(1, 5):
        await tx.execute(
            "INSERT INTO servers (id, uuid, name, endpoint_url, bucket, region, access_key, secret_key,"
            " location, zone, latitude, longitude, is_on, is_active, health, created_at, updated_at) "
            "VALUES (?, ?, ?, 'http://x', 'b', 'r', 'k', 's', 'l', 'z', 0, 0, 1, 1, 'up', ?, ?)",
            (sid, f"s{sid}", f"s{sid}", now, now),
        )
    await tx.execute(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < CAST(? AS INTEGER)) "
        "INSERT INTO files (id, uuid, owner_id, name, created_at, updated_at) "
        "SELECT i, 'f' || i, 1, 'f' || i, CAST(? AS TEXT), CAST(? AS TEXT) FROM n",
        (count, now, now),
    )
    await tx.execute(
        "INSERT INTO versions (id, file_id, object_key, size, content_type, zone, status, created_at) "
        "SELECT id, id, 'k' || id, 1, 'x', 'z', 'stored', CAST(? AS TEXT) FROM files",
        (now,),
    )


async def build_files(db: Any, files: int) -> None:
    """1,000 users, 4 servers (3 active in one zone), `files` files of 1 MiB with one stored version on
    each of the 3 active servers: set-based SQL, in one transaction (a million files in seconds)."""
    now = "2026-01-01T00:00:00.000Z"
    async with db.transaction() as tx:
        await tx.execute(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000) "
            "INSERT INTO users (id, uuid, username, password_hash, created_at, updated_at) "
            "SELECT i, 'user-' || i, 'user' || i, 'x', ?, ? FROM n",
            (now, now),
        )
        for sid, zone in ((1, "USA"), (2, "USA"), (3, "USA"), (4, "USA")):
            await tx.execute(
                "INSERT INTO servers (id, uuid, name, endpoint_url, bucket, region, access_key, secret_key,"
                " location, zone, latitude, longitude, is_on, is_active, health, created_at, updated_at) "
                "VALUES (?, ?, ?, 'http://x', 'b', 'r', 'k', 's', 'l', ?, 0, 0, 1, ?, 'up', ?, ?)",
                (sid, f"s{sid}", f"s{sid}", zone, int(sid < 4), now, now),
            )
        # One user with a tenth of the files (the worst first page), the rest spread over 999 users.
        await tx.execute(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?) "
            "INSERT INTO files (id, uuid, owner_id, name, created_at, updated_at) "
            "SELECT i, lower(hex(randomblob(16))), CASE WHEN i % 10 = 0 THEN 1 ELSE 2 + i % 999 END, "
            "'file-' || i || '.bin', ?, ? FROM n",
            (files, now, now),
        )
        await tx.execute(
            "INSERT INTO versions (id, file_id, object_key, size, content_type, upload_server_id, zone, "
            "status, etag, created_at, stored_at) SELECT id, id, lower(hex(randomblob(16))), 1048576, "
            "'application/octet-stream', 1, 'USA', 'stored', lower(hex(randomblob(16))), ?, ? FROM files",
            (now, now),
        )
        await tx.execute("UPDATE files SET current_version_id = id, latest_version_id = id")
        await tx.execute(
            "INSERT INTO replicas (server_id, version_id) SELECT s.id, v.id FROM versions v, "
            "(SELECT 1 AS id UNION ALL SELECT 2 UNION ALL SELECT 3) s"
        )

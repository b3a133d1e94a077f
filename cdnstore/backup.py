"""`cdnstore backup PATH`: a consistent copy of the database, taken with SQLite's online backup API
while the daemon serves.

The copy is made in one step under one read transaction: in WAL mode a reader blocks no writer, so
the daemon goes on writing, and the copy is the database as of the moment the step began. It is
written beside PATH first, switched to a single-file journal, checked, and only then moved onto PATH,
so PATH is either the previous backup or a complete new one. The copy is created 0600, as the database.
Restoring is documented in docs/operations.md ("Backups and restore").
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from .db import private_file


class BackupError(Exception):
    pass


@dataclass(frozen=True)
class BackupResult:
    path: Path
    size: int
    schema_version: int


def backup(source: str | Path, dest: str | Path) -> BackupResult:
    source, dest = Path(source), Path(dest)
    if not source.is_file():
        raise BackupError(f"no database at {source} (run `cdnstore init` first?)")
    if dest.resolve() == source.resolve():
        raise BackupError(f"{dest} is the database itself")
    if dest.is_dir():
        raise BackupError(f"{dest} is a directory; give a file name")
    partial = dest.with_name(dest.name + ".partial")
    partial.unlink(missing_ok=True)
    private_file(partial)  # 0600 whatever the umask: a backup holds what the database holds
    src = sqlite3.connect(f"{source.resolve().as_uri()}?mode=ro", uri=True)
    try:
        src.execute("PRAGMA busy_timeout = 5000")
        dst = sqlite3.connect(partial, isolation_level=None)
        try:
            src.backup(dst)  # all pages in one step: one consistent snapshot, never restarted
            dst.execute("PRAGMA journal_mode = DELETE")  # one self-contained file, no -wal beside it
            check = dst.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                raise BackupError(f"the copy failed its check: {check}")
            version = int(dst.execute("PRAGMA user_version").fetchone()[0])
        finally:
            dst.close()
    except sqlite3.Error as exc:
        with contextlib.suppress(OSError):
            partial.unlink()
        raise BackupError(f"backup of {source} failed: {exc}") from None
    except BaseException:
        with contextlib.suppress(OSError):
            partial.unlink()
        raise
    finally:
        src.close()
    with open(partial, "rb") as f:
        os.fsync(f.fileno())
    os.replace(partial, dest)
    return BackupResult(dest, dest.stat().st_size, version)

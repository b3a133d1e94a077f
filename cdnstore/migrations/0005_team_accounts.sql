-- 0005: running cdnstore for a team. A user may be disabled (no login, sessions ended, links 410), limited to
-- quota_bytes of stored files (NULL: no quota) and to zones (a JSON array of zone names; NULL: any zone).
-- used_bytes is the size of the user's stored current versions, kept by the files trigger below in the
-- transaction that changes them (as the servers' counters are), so a quota check or a user list never sums
-- millions of versions. deleted_at: the user was deleted (their files are being removed in the background;
-- the row stays because the files and versions that the removal jobs work on refer to it).
ALTER TABLE users ADD COLUMN is_disabled INTEGER NOT NULL DEFAULT 0 CHECK (is_disabled IN (0, 1));
ALTER TABLE users ADD COLUMN quota_bytes INTEGER CHECK (quota_bytes >= 0);
ALTER TABLE users ADD COLUMN zones TEXT;
ALTER TABLE users ADD COLUMN used_bytes INTEGER NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN deleted_at TEXT;
UPDATE users SET used_bytes = (SELECT coalesce(sum(v.size), 0) FROM files f JOIN versions v ON v.id = f.current_version_id
                               WHERE f.owner_id = users.id AND f.deleted_at IS NULL);

CREATE TRIGGER files_used_bytes AFTER UPDATE OF current_version_id, deleted_at ON files BEGIN
    UPDATE users SET used_bytes = used_bytes
        - CASE WHEN OLD.deleted_at IS NULL THEN coalesce((SELECT size FROM versions WHERE id = OLD.current_version_id), 0) ELSE 0 END
        + CASE WHEN NEW.deleted_at IS NULL THEN coalesce((SELECT size FROM versions WHERE id = NEW.current_version_id), 0) ELSE 0 END
    WHERE id = NEW.owner_id;
END;

-- Downloads handed out per storage server and UTC day (YYYY-MM-DD), owners' and share links' alike, with the
-- bytes of the files behind them. stats.py counts them in memory and adds them here in batches.
CREATE TABLE download_stats (
    day       TEXT    NOT NULL,
    server_id INTEGER NOT NULL REFERENCES servers (id) ON DELETE CASCADE,
    downloads INTEGER NOT NULL DEFAULT 0,
    bytes     INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (day, server_id)
) WITHOUT ROWID;

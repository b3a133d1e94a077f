-- 0005: running cdnstore for a team (see the SQLite migration of the same number for what each column is).
ALTER TABLE users ADD COLUMN is_disabled INTEGER NOT NULL DEFAULT 0 CHECK (is_disabled IN (0, 1));
ALTER TABLE users ADD COLUMN quota_bytes BIGINT CHECK (quota_bytes >= 0);
ALTER TABLE users ADD COLUMN zones TEXT;
ALTER TABLE users ADD COLUMN used_bytes BIGINT NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN deleted_at TEXT;
UPDATE users SET used_bytes = (SELECT coalesce(sum(v.size), 0) FROM files f JOIN versions v ON v.id = f.current_version_id
                               WHERE f.owner_id = users.id AND f.deleted_at IS NULL);

CREATE FUNCTION files_used_bytes() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE users SET used_bytes = used_bytes
        - CASE WHEN OLD.deleted_at IS NULL THEN coalesce((SELECT size FROM versions WHERE id = OLD.current_version_id), 0) ELSE 0 END
        + CASE WHEN NEW.deleted_at IS NULL THEN coalesce((SELECT size FROM versions WHERE id = NEW.current_version_id), 0) ELSE 0 END
    WHERE id = NEW.owner_id;
    RETURN NULL;
END $$;
CREATE TRIGGER files_used_bytes AFTER UPDATE OF current_version_id, deleted_at ON files
    FOR EACH ROW EXECUTE FUNCTION files_used_bytes();

CREATE TABLE download_stats (
    day       TEXT    NOT NULL,
    server_id BIGINT  NOT NULL REFERENCES servers (id) ON DELETE CASCADE,
    downloads BIGINT  NOT NULL DEFAULT 0,
    bytes     BIGINT  NOT NULL DEFAULT 0,
    PRIMARY KEY (day, server_id)
);

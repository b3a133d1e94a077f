-- 0014: upload requests, files that expire, and a trash.
-- upload_requests: a link (token, the capability, stored as is because the owner's list shows it) through
-- which people without an account send files to its owner (upload_requests.py). password_hash: argon2id, or
-- NULL. max_files, max_bytes: NULL no limit. closed_at: closed by its owner or an admin (reopened: NULL).
-- deleted_at: deleted (its token is 404; the row stays because the files it received name it). What it
-- received is counted from files.received_via, not kept here.
CREATE TABLE upload_requests (
    id            INTEGER PRIMARY KEY,
    uuid          TEXT    NOT NULL UNIQUE,
    owner_id      INTEGER NOT NULL REFERENCES users (id),
    token         TEXT    NOT NULL UNIQUE,
    message       TEXT,
    password_hash TEXT,
    expires_at    TEXT,
    max_files     INTEGER CHECK (max_files IS NULL OR max_files >= 1),
    max_bytes     INTEGER CHECK (max_bytes IS NULL OR max_bytes >= 1),
    closed_at     TEXT,
    deleted_at    TEXT,
    created_at    TEXT    NOT NULL,
    updated_at    TEXT    NOT NULL
);
CREATE INDEX upload_requests_owner ON upload_requests (owner_id, id DESC) WHERE deleted_at IS NULL;

-- files.expires_at: the file is deleted (as its owner would) once this passes; NULL never. purge_at: the
-- file is in its owner's trash (deleted_at set, its stored version kept, still counted in used_bytes) until
-- then; NULL not in the trash.
-- received_via: the upload request it came through.
ALTER TABLE files ADD COLUMN expires_at TEXT;
ALTER TABLE files ADD COLUMN purge_at TEXT;
ALTER TABLE files ADD COLUMN received_via INTEGER REFERENCES upload_requests (id);
CREATE INDEX files_expiring ON files (expires_at) WHERE expires_at IS NOT NULL AND deleted_at IS NULL;
CREATE INDEX files_trash ON files (owner_id, id DESC) WHERE purge_at IS NOT NULL;
CREATE INDEX files_purge ON files (purge_at) WHERE purge_at IS NOT NULL;
CREATE INDEX files_received ON files (received_via) WHERE received_via IS NOT NULL;

-- users.max_file_lifetime, default_file_lifetime: seconds a user's file may live at most (expires_at is
-- bounded by it) and lives when its upload names no expiry; NULL: no bound, no default. Set by admins.
ALTER TABLE users ADD COLUMN max_file_lifetime INTEGER CHECK (max_file_lifetime > 0);
ALTER TABLE users ADD COLUMN default_file_lifetime INTEGER CHECK (default_file_lifetime > 0);

DROP TRIGGER files_used_bytes;
-- users.used_bytes follows the current versions of a user's live files and of those in the trash, in the
-- transaction that changes them: a file in the trash still counts (and so in the quota) until it is purged.
CREATE TRIGGER files_used_bytes AFTER UPDATE OF current_version_id, deleted_at, purge_at ON files BEGIN
    UPDATE users SET used_bytes = used_bytes
        - CASE WHEN OLD.deleted_at IS NULL OR OLD.purge_at IS NOT NULL THEN coalesce((SELECT size FROM versions WHERE id = OLD.current_version_id), 0) ELSE 0 END
        + CASE WHEN NEW.deleted_at IS NULL OR NEW.purge_at IS NOT NULL THEN coalesce((SELECT size FROM versions WHERE id = NEW.current_version_id), 0) ELSE 0 END
    WHERE id = NEW.owner_id;
END;

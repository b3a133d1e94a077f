-- 0011: storage vendors (issue 26).
-- servers.public_url: the address presigned URLs are signed for (clients reach it), NULL: endpoint_url;
-- addressing_style: path (https://host/bucket/key) or virtual (https://bucket.host/key). capabilities: JSON of
-- what the last probe proved (probe.py), NULL until one ran; events_seen_at: when the server's last object
-- event arrived (kept to the minute), NULL: none yet.
ALTER TABLE servers ADD COLUMN public_url TEXT;
ALTER TABLE servers ADD COLUMN addressing_style TEXT NOT NULL DEFAULT 'path' CHECK (addressing_style IN ('path', 'virtual'));
ALTER TABLE servers ADD COLUMN capabilities TEXT;
ALTER TABLE servers ADD COLUMN events_seen_at TEXT;
-- Imports (imports.py): the objects already in a server's bucket (under prefix) adopted as files of one
-- user, one import running per server. after_key: the last key handled (a restart lists on after it); the
-- counters are the progress the API shows. import_errors: keys not adopted and why (not a valid file name,
-- a name the owner already uses). import_keys: the page of keys being adopted, filled and emptied inside the
-- one transaction that adopts it (its set-based statements join it).
CREATE TABLE imports (
    id            INTEGER PRIMARY KEY,
    uuid          TEXT    NOT NULL UNIQUE,
    server_id     INTEGER NOT NULL REFERENCES servers (id) ON DELETE CASCADE,
    owner_id      INTEGER NOT NULL REFERENCES users (id),
    prefix        TEXT    NOT NULL DEFAULT '',
    strip_prefix  INTEGER NOT NULL DEFAULT 0 CHECK (strip_prefix IN (0, 1)),
    state         TEXT    NOT NULL DEFAULT 'running' CHECK (state IN ('running', 'done', 'failed')),
    after_key     TEXT,
    objects_seen  INTEGER NOT NULL DEFAULT 0,
    files_adopted INTEGER NOT NULL DEFAULT 0,
    bytes         INTEGER NOT NULL DEFAULT 0,
    errors        INTEGER NOT NULL DEFAULT 0,
    last_error    TEXT,
    created_at    TEXT    NOT NULL,
    updated_at    TEXT    NOT NULL,
    finished_at   TEXT
);
CREATE UNIQUE INDEX imports_running ON imports (server_id) WHERE state = 'running';
CREATE INDEX imports_server ON imports (server_id, id);
CREATE TABLE import_errors (
    import_id INTEGER NOT NULL REFERENCES imports (id) ON DELETE CASCADE,
    key       TEXT    NOT NULL,
    reason    TEXT    NOT NULL,
    PRIMARY KEY (import_id, key)
) WITHOUT ROWID;
CREATE TABLE import_keys (
    import_id    INTEGER NOT NULL REFERENCES imports (id) ON DELETE CASCADE,
    key          TEXT    NOT NULL,
    size         INTEGER NOT NULL,
    name         TEXT    NOT NULL,
    content_type TEXT    NOT NULL,
    file_uuid    TEXT    NOT NULL,
    history_uuid TEXT    NOT NULL,
    history_data TEXT    NOT NULL,
    reason       TEXT,
    PRIMARY KEY (import_id, key)
) WITHOUT ROWID;

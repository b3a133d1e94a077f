-- cdnstore's schema for a new database. Upgrades of existing databases are the numbered files in
-- cdnstore/migrations/; tests/test_db.py checks that replaying them gives exactly this schema.
-- Internal keys are INTEGER (small rows, fast joins at millions of files); the API shows the uuid columns.
-- Times are RFC 3339 UTC text, except the job queue's, which are unix seconds (compared on every claim).

CREATE TABLE users (
    id            INTEGER PRIMARY KEY,
    uuid          TEXT    NOT NULL UNIQUE,
    username      TEXT    NOT NULL UNIQUE,
    password_hash TEXT    NOT NULL,
    is_admin      INTEGER NOT NULL DEFAULT 0 CHECK (is_admin IN (0, 1)),
    permissions   TEXT    NOT NULL DEFAULT '[]',  -- JSON array of permission names
    created_at    TEXT    NOT NULL,
    updated_at    TEXT    NOT NULL
, is_disabled INTEGER NOT NULL DEFAULT 0 CHECK (is_disabled IN (0, 1)), quota_bytes INTEGER CHECK (quota_bytes >= 0), zones TEXT, used_bytes INTEGER NOT NULL DEFAULT 0, deleted_at TEXT, username_key TEXT, last_login_at TEXT, max_file_lifetime INTEGER CHECK (max_file_lifetime > 0), default_file_lifetime INTEGER CHECK (default_file_lifetime > 0), oidc_subject TEXT);
-- is_disabled: no login, sessions ended, share links 410. quota_bytes: NULL no quota. zones: JSON array of the
-- zones the user's uploads may go to, NULL any. used_bytes: the size of the user's stored current versions,
-- kept by the files_used_bytes trigger below. deleted_at: the user was deleted (the row stays while their
-- files are removed). (Added by migration 0005, spelled as SQLite stores an added column.)
-- username_key: the lowercased username of the account that holds that name, whatever its case (usernames are
-- compared ignoring case); NULL for deleted users and for accounts that clashed in case with an older one before
-- migration 0010 (they log in by their exact spelling). last_login_at: the latest successful login (password
-- checks of an account used lately wait in a room of their own: auth.Priority). (Both added by migration 0010.)
CREATE UNIQUE INDEX users_by_username_key ON users (username_key);
-- max_file_lifetime, default_file_lifetime: seconds a user's file may live at most (its expires_at is bounded
-- by it) and lives when its upload names no expiry; NULL no bound, no default; set by admins. (Migration 0014.)
-- oidc_subject: the `sub` of the OpenID Connect identity the user signs in with, NULL none yet; a deleted user
-- keeps it, so that the provider cannot bring them back (migration 0015).
CREATE UNIQUE INDEX users_oidc_subject ON users (oidc_subject) WHERE oidc_subject IS NOT NULL;

-- Refresh tokens are kept by hash: rotation marks the used one, logout revokes it,
-- and a used token presented again revokes its whole family (it was stolen).
CREATE TABLE refresh_tokens (
    token_hash TEXT    PRIMARY KEY,
    family     TEXT    NOT NULL,
    user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    expires_at TEXT    NOT NULL,
    used_at    TEXT,
    revoked_at TEXT,
    created_at TEXT    NOT NULL
) WITHOUT ROWID;
CREATE INDEX refresh_tokens_family ON refresh_tokens (family);
CREATE INDEX refresh_tokens_user ON refresh_tokens (user_id);

-- A session is one login: its refresh tokens form one family (refresh_tokens.family = sessions.id) and
-- its access tokens name it. Logout, a new password, a reused refresh token (and disabling the user) set
-- ended_at, and from then on its access tokens answer 401 (users.py caches this per process).
CREATE TABLE sessions (
    id         TEXT    PRIMARY KEY,
    user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at TEXT    NOT NULL,
    ended_at   TEXT
) WITHOUT ROWID;
CREATE INDEX sessions_user ON sessions (user_id);

CREATE TABLE servers (
    id           INTEGER PRIMARY KEY,
    uuid         TEXT    NOT NULL UNIQUE,
    name         TEXT    NOT NULL UNIQUE,
    endpoint_url TEXT    NOT NULL,
    bucket       TEXT    NOT NULL,
    region       TEXT    NOT NULL,
    access_key   TEXT    NOT NULL,
    secret_key   TEXT    NOT NULL,
    location     TEXT    NOT NULL,
    zone         TEXT    NOT NULL,
    latitude     REAL    NOT NULL CHECK (latitude BETWEEN -90 AND 90),
    longitude    REAL    NOT NULL CHECK (longitude BETWEEN -180 AND 180),
    is_on        INTEGER NOT NULL CHECK (is_on IN (0, 1)),
    is_active    INTEGER NOT NULL CHECK (is_active IN (0, 1)),
    health       TEXT    NOT NULL DEFAULT 'unknown' CHECK (health IN ('up', 'down', 'unknown')),
    -- kept by the replicas triggers below, so that the server list never scans millions of replicas
    files_present INTEGER NOT NULL DEFAULT 0,
    bytes_present INTEGER NOT NULL DEFAULT 0,
    created_at   TEXT    NOT NULL,
    updated_at   TEXT    NOT NULL
, events_token_hash TEXT CHECK (length(events_token_hash) = 64), public_url TEXT, addressing_style TEXT NOT NULL DEFAULT 'path' CHECK (addressing_style IN ('path', 'virtual')), capabilities TEXT, events_seen_at TEXT);
-- events_token_hash: the SHA-256 hex of the server's own events token, NULL when it takes events.token.
-- (Added by migration 0003, and spelled here as SQLite stores an added column, so that a new database and
-- a migrated one have the same schema text.)
-- public_url: the address presigned URLs are signed for (what clients reach), NULL: endpoint_url;
-- addressing_style: 'path' (https://host/bucket/key) or 'virtual' (https://bucket.host/key); capabilities: JSON
-- of what the last probe proved the server does (probe.py), NULL until one ran; events_seen_at: when its last
-- object event arrived (kept to the minute), NULL: none yet. (Migration 0011.)

-- A file is a user's name for a sequence of versions (uploads); current_version_id is NULL until the
-- first upload is stored.
CREATE TABLE files (
    id                 INTEGER PRIMARY KEY,
    uuid               TEXT    NOT NULL UNIQUE,
    owner_id           INTEGER NOT NULL REFERENCES users (id),
    name               TEXT    NOT NULL,
    current_version_id INTEGER REFERENCES versions (id),  -- stored content served to downloads
    latest_version_id  INTEGER REFERENCES versions (id),  -- last announced upload
    deleted_at         TEXT,
    created_at         TEXT    NOT NULL,
    updated_at         TEXT    NOT NULL
, expires_at TEXT, purge_at TEXT, received_via INTEGER REFERENCES upload_requests (id));
-- expires_at: the file is deleted (as its owner would) once this passes; NULL never. purge_at: the file is in
-- its owner's trash (deleted_at set, its stored version kept, still counted in used_bytes) until then; NULL
-- not in the trash. received_via: the upload request it came through. (Migration 0014, spelled as SQLite
-- stores added columns.)
CREATE UNIQUE INDEX files_owner_name ON files (owner_id, name) WHERE deleted_at IS NULL;
CREATE INDEX files_owner_newest ON files (owner_id, id DESC) WHERE deleted_at IS NULL;
CREATE INDEX files_expiring ON files (expires_at) WHERE expires_at IS NOT NULL AND deleted_at IS NULL;
CREATE INDEX files_trash ON files (owner_id, id DESC) WHERE purge_at IS NOT NULL;
CREATE INDEX files_purge ON files (purge_at) WHERE purge_at IS NOT NULL;
CREATE INDEX files_received ON files (received_via) WHERE received_via IS NOT NULL;

-- One uploaded content of a file, in one object (object_key) copied to servers (replicas).
-- status: uploading -> stored -> (superseded | deleted); zone is the zone of the server that stored it first.
CREATE TABLE versions (
    id               INTEGER PRIMARY KEY,
    file_id          INTEGER NOT NULL REFERENCES files (id),
    object_key       TEXT    NOT NULL UNIQUE,
    size             INTEGER NOT NULL CHECK (size >= 0),
    content_type     TEXT    NOT NULL,
    upload_server_id INTEGER REFERENCES servers (id) ON DELETE SET NULL,
    zone             TEXT,
    status           TEXT    NOT NULL DEFAULT 'uploading'
                     CHECK (status IN ('uploading', 'stored', 'superseded', 'deleted')),
    etag             TEXT,
    created_at       TEXT    NOT NULL,
    stored_at        TEXT
, upload_id TEXT, part_size INTEGER CHECK (part_size > 0), sha256 TEXT CHECK (length(sha256) = 64 AND sha256 NOT GLOB '*[^0-9a-f]*'), sha256_declared INTEGER NOT NULL DEFAULT 0 CHECK (sha256_declared IN (0, 1)), verify_pending INTEGER NOT NULL DEFAULT 0 CHECK (verify_pending IN (0, 1)), rejected_at TEXT, verify_attempts INTEGER NOT NULL DEFAULT 0 CHECK (verify_attempts >= 0), verify_after TEXT, link_request TEXT);
-- upload_id, part_size: the multipart upload on upload_server_id that a large version is sent in (parts of
-- part_size bytes but the last), NULL for a single PUT. (Added by migration 0004, spelled as SQLite stores
-- an added column.)
-- sha256: the lowercase hex SHA-256 of the content, NULL until known (declared at upload, or computed the
-- first time cdnstore reads the bytes); sha256_declared: the client declared it (a single PUT is bound to
-- it by the storage server, a multipart one is checked on first read); verify_pending: the SHA-256 waits
-- for cdnstore's first read (the integrity verifier does it when no copy will); rejected_at: the content
-- did not match the declared SHA-256 (status 'deleted', never served nor copied). (Migration 0006.)
-- verify_attempts: the verifier's reads of it that settled nothing (bytes that changed between two reads, a
-- read that failed), its final verdict after integrity.verify_attempts of them; verify_after: not read again
-- before this time (the back-off; NULL: due now). (Migration 0009.)
-- link_request: the share link `POST /files` asked for with `"link"` (JSON), created in the transaction that
-- makes this version the file's content; NULL: none asked (migration 0015).
CREATE INDEX versions_file ON versions (file_id);
CREATE INDEX versions_uploading ON versions (created_at) WHERE status = 'uploading';
CREATE INDEX versions_zone_stored ON versions (zone) WHERE status = 'stored';
CREATE INDEX versions_verify_pending ON versions (id) WHERE verify_pending = 1;
CREATE INDEX versions_rejected ON versions (rejected_at) WHERE rejected_at IS NOT NULL;

-- Which server holds which version (verified present). A copy still to be made is an open 'copy'
-- job instead (jobs below), so there is one truth for "pending".
CREATE TABLE replicas (
    server_id  INTEGER NOT NULL REFERENCES servers (id) ON DELETE CASCADE,
    version_id INTEGER NOT NULL REFERENCES versions (id), status TEXT NOT NULL DEFAULT 'present' CHECK (status IN ('present', 'corrupt')), verified_at TEXT, etag TEXT,
    PRIMARY KEY (server_id, version_id)
) WITHOUT ROWID;
-- (status and verified_at spelled as SQLite stores columns added by migration 0006.)
-- status 'corrupt': its bytes were found to differ from the version's sha256 (being replaced, never served);
-- verified_at: when cdnstore last read these bytes back and they matched. (Migration 0006.) The counters
-- on servers count every row, corrupt ones too (the object is there, taking its bytes).
-- etag: the ETag the server gave for these bytes when cdnstore recorded them (the upload's, or its copy's);
-- a storage event for the key whose object has another ETag now was a rewrite. NULL: unknown. (Migration 0009.)
CREATE INDEX replicas_version ON replicas (version_id);
CREATE INDEX replicas_verified ON replicas (verified_at);

CREATE TRIGGER replicas_counted_insert AFTER INSERT ON replicas BEGIN
    UPDATE servers SET files_present = files_present + 1,
                       bytes_present = bytes_present + (SELECT size FROM versions WHERE id = NEW.version_id)
    WHERE id = NEW.server_id;
END;

CREATE TRIGGER replicas_counted_delete AFTER DELETE ON replicas BEGIN
    UPDATE servers SET files_present = files_present - 1,
                       bytes_present = bytes_present - (SELECT size FROM versions WHERE id = OLD.version_id)
    WHERE id = OLD.server_id;
END;

-- users.used_bytes follows the current versions of a user's live files and of those in the trash, in the
-- transaction that changes them.
CREATE TRIGGER files_used_bytes AFTER UPDATE OF current_version_id, deleted_at, purge_at ON files BEGIN
    UPDATE users SET used_bytes = used_bytes
        - CASE WHEN OLD.deleted_at IS NULL OR OLD.purge_at IS NOT NULL THEN coalesce((SELECT size FROM versions WHERE id = OLD.current_version_id), 0) ELSE 0 END
        + CASE WHEN NEW.deleted_at IS NULL OR NEW.purge_at IS NOT NULL THEN coalesce((SELECT size FROM versions WHERE id = NEW.current_version_id), 0) ELSE 0 END
    WHERE id = NEW.owner_id;
END;

-- What each user did, newest first (event names in cdnstore/history.py).
CREATE TABLE history (
    id         INTEGER PRIMARY KEY,
    uuid       TEXT    NOT NULL,
    user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    event      TEXT    NOT NULL,
    object_id  TEXT,
    data       TEXT    NOT NULL DEFAULT '{}',
    created_at TEXT    NOT NULL
);
CREATE INDEX history_user ON history (user_id, id DESC);
CREATE INDEX history_user_event ON history (user_id, event, id DESC);

-- The durable job queue (jobs.py): copy a version onto a server, or remove it from one.
-- A job is claimed with a lease, deleted when done, retried with backoff, and left 'failed' when out
-- of attempts. Times are unix seconds.
CREATE TABLE jobs (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused: an admin may retry a job by id
    kind        TEXT    NOT NULL CHECK (kind IN ('copy', 'remove')),
    version_id  INTEGER NOT NULL REFERENCES versions (id),
    server_id   INTEGER NOT NULL REFERENCES servers (id) ON DELETE CASCADE,
    status      TEXT    NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'running', 'failed')),
    attempts    INTEGER NOT NULL DEFAULT 0,
    run_after   REAL    NOT NULL,
    lease_until REAL,
    last_error  TEXT,
    created_at  REAL    NOT NULL,
    updated_at  REAL    NOT NULL
, claim_token TEXT);
-- claim_token: a uuid per claim; finishing, failing or postponing the job needs it (migration 0007, spelled
-- as SQLite stores an added column). A claim whose lease_until has passed may be taken over by any worker.
-- One open job per (kind, version, server): enqueueing twice changes nothing.
CREATE UNIQUE INDEX jobs_dedupe ON jobs (kind, version_id, server_id) WHERE status IN ('queued', 'running');
-- Claims take the oldest due job of one server at a time (servers in turn), and progress counts
-- a server's open jobs: both walk this index.
CREATE INDEX jobs_claim ON jobs (server_id, status, run_after);
CREATE INDEX jobs_version ON jobs (version_id);

-- Share links (links.py). The token is the capability itself, stored as is because the
-- owner's list shows it (the contract puts it in every Link): 32 random bytes, URL-safe (256 bits),
-- so it cannot be guessed. The password, if any, is an argon2id hash. expires_at is RFC 3339 UTC text
-- in now_iso()'s format, so it compares as text. downloads is raised by one conditional UPDATE in the
-- writer transaction, so max_downloads grants exactly that many downloads. Revoking deletes the row.
-- A link's files are its link_files rows, in the order given; file_id is the file of a link made for
-- one file (POST /files/{id}/links), NULL for a link to several (POST /links). owner_id: whose links they
-- are (GET /links). Migration 0013 added link_files and owner_id.
CREATE TABLE links (
    id            INTEGER PRIMARY KEY,
    uuid          TEXT    NOT NULL UNIQUE,
    file_id       INTEGER REFERENCES files (id),
    token         TEXT    NOT NULL UNIQUE,
    password_hash TEXT,
    expires_at    TEXT,
    max_downloads INTEGER CHECK (max_downloads IS NULL OR max_downloads >= 1),
    downloads     INTEGER NOT NULL DEFAULT 0
                  CHECK (downloads >= 0 AND (max_downloads IS NULL OR downloads <= max_downloads)),
    created_at    TEXT    NOT NULL,
    owner_id      INTEGER NOT NULL REFERENCES users (id)
);
CREATE INDEX links_file ON links (file_id, id DESC);
CREATE INDEX links_owner ON links (owner_id, id DESC);
CREATE TABLE link_files (
    link_id  INTEGER NOT NULL REFERENCES links (id) ON DELETE CASCADE,
    file_id  INTEGER NOT NULL REFERENCES files (id),
    position INTEGER NOT NULL,
    PRIMARY KEY (link_id, file_id)
) WITHOUT ROWID;
CREATE INDEX link_files_file ON link_files (file_id);

-- Upload requests (upload_requests.py): a link through which people without an account send files to its
-- owner. The token is the capability, stored as is because the owner's list shows it (like a link's).
-- password_hash: argon2id, or NULL. max_files, max_bytes: NULL no limit. closed_at: closed by its owner or
-- an admin (NULL again when reopened). deleted_at: deleted (its token is 404; the row stays because the
-- files it received name it). What it received is counted from files.received_via, not kept here.
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

-- Downloads handed out per storage server and UTC day (YYYY-MM-DD), owners' and share links' alike, with the
-- bytes of the files behind them. stats.py counts them in memory and adds them here in batches.
CREATE TABLE download_stats (
    day       TEXT    NOT NULL,
    server_id INTEGER NOT NULL REFERENCES servers (id) ON DELETE CASCADE,
    downloads INTEGER NOT NULL DEFAULT 0,
    bytes     INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (day, server_id)
) WITHOUT ROWID;

-- Named leases (db/leases.py): periodic work runs where its lease is held, on one daemon at a time; a
-- holder renews it while alive, and a dead holder's lease runs out (until, unix seconds) for another.
CREATE TABLE leases (
    name   TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    until  REAL NOT NULL  -- unix seconds
);

-- Several daemons on one database (0008): see cdnstore/migrations/0008_shared_caches_and_throttles.sql.
-- cache_versions: a counter per in-memory copy (servers, users, sessions), raised in the transaction of
-- every change; each daemon compares it every second and reloads the copy that moved (changes.py).
CREATE TABLE cache_versions (
    topic   TEXT    PRIMARY KEY,
    version INTEGER NOT NULL
) WITHOUT ROWID;

-- throttle_failures: one row per counted failure (wrong login or link password, an upload announced),
-- so that the throttles count across daemons (throttle.py; SQLite's daemon counts in memory instead).
-- `at` is unix seconds; rows older than their throttle's window are deleted as new ones come.
CREATE TABLE throttle_failures (
    scope TEXT NOT NULL,
    key   TEXT NOT NULL,
    at    REAL NOT NULL
);
CREATE INDEX throttle_failures_key ON throttle_failures (scope, key, at);
CREATE INDEX throttle_failures_age ON throttle_failures (scope, at);

-- Imports (0011, imports.py): the objects already in a server's bucket (under prefix) adopted as files of one
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
-- Personal API keys (keys.py). The secret (`cdn_` + 256 random bits) is shown once and kept only as its
-- SHA-256 (secret_hash): a fast hash is right for a high-entropy secret checked on every request. prefix: the
-- first characters, shown in lists so a user can tell keys apart. scopes: a JSON array of read, upload,
-- delete, share, admin. last_used_at is written in batches (not once per request). Revoking deletes the row.
CREATE TABLE api_keys (
    id           INTEGER PRIMARY KEY,
    uuid         TEXT    NOT NULL UNIQUE,
    user_id      INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name         TEXT    NOT NULL,
    prefix       TEXT    NOT NULL,
    secret_hash  TEXT    NOT NULL UNIQUE CHECK (length(secret_hash) = 64),
    scopes       TEXT    NOT NULL,
    expires_at   TEXT,
    last_used_at TEXT,
    created_at   TEXT    NOT NULL
);
CREATE INDEX api_keys_user ON api_keys (user_id, id DESC);
-- Outgoing webhooks (migration 0016).
-- webhooks: a user's endpoint; secret is its whsec_ signing secret, sealed (sealing.py), never shown again.
CREATE TABLE webhooks (
    id         INTEGER PRIMARY KEY,
    uuid       TEXT    NOT NULL UNIQUE,
    owner_id   INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    url        TEXT    NOT NULL,
    secret     TEXT    NOT NULL,
    created_at TEXT    NOT NULL
);
CREATE INDEX webhooks_owner ON webhooks (owner_id, id DESC);

-- What each webhook subscribes to, one row per event, with its owner, so that a user's subscribers of an
-- event (and a fleet event's, all of them) are found in this table's key alone.
CREATE TABLE webhook_events (
    event      TEXT    NOT NULL,
    owner_id   INTEGER NOT NULL,
    webhook_id INTEGER NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    PRIMARY KEY (event, owner_id, webhook_id)
) WITHOUT ROWID;
CREATE INDEX webhook_events_webhook ON webhook_events (webhook_id);

-- One event for one webhook: the outbox row, written in the transaction of what it tells (a user's event
-- with its history row: history.record), and its delivery log. uuid is its webhook-id (msg_...), the same on
-- every attempt. A worker claims a pending one due by run_after (unix seconds) under a new claim_token,
-- setting run_after to the end of its lease: a claim whose daemon died is due again then. Retried with
-- backoff until webhooks.retry_for after occurred_at, then 'failed'; delivered and failed ones are deleted
-- webhooks.log_days after they occurred.
CREATE TABLE webhook_deliveries (
    id           INTEGER PRIMARY KEY,
    uuid         TEXT    NOT NULL UNIQUE,
    webhook_id   INTEGER NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    event        TEXT    NOT NULL,
    object_id    TEXT,
    data         TEXT    NOT NULL DEFAULT '{}',
    occurred_at  TEXT    NOT NULL,
    status       TEXT    NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts     INTEGER NOT NULL DEFAULT 0,
    run_after    REAL    NOT NULL DEFAULT 0,
    claim_token  TEXT,
    last_error   TEXT,
    delivered_at TEXT
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (run_after) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_log ON webhook_deliveries (webhook_id, id DESC);
CREATE INDEX webhook_deliveries_done ON webhook_deliveries (occurred_at) WHERE status != 'pending';

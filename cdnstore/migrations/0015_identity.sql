-- 0015: identity. Single sign-on, personal API keys, and the link asked for with an upload.
-- users.oidc_subject: the `sub` of the OpenID Connect identity a user signs in with (NULL: none yet). A user
-- is found by it first; a deleted user keeps it, so that the provider cannot bring them back.
ALTER TABLE users ADD COLUMN oidc_subject TEXT;
CREATE UNIQUE INDEX users_oidc_subject ON users (oidc_subject) WHERE oidc_subject IS NOT NULL;

-- versions.link_request: the share link `POST /files` asked for with `"link": {...}` (JSON: its uuid, token,
-- password hash, expires_in, max_downloads), created in the transaction that makes the version the file's
-- content (files.py, links.py); NULL: none asked.
ALTER TABLE versions ADD COLUMN link_request TEXT;

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

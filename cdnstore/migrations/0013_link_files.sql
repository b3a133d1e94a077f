-- 0013: a share link may name several files (issue 27). link_files holds every link's files, in the order
-- they were given (one row for a link made through /files/{id}/links); links.file_id stays the file of a
-- one-file link and is NULL for a link to several. links.owner_id: the caller's list of links (GET /links)
-- without a walk through their files. Rebuilt to drop file_id's NOT NULL (ALTER TABLE cannot): renamed, made
-- anew, copied, dropped; nothing refers to links yet, so foreign keys may stay on.
DROP INDEX links_file;
ALTER TABLE links RENAME TO links_old;
-- Share links (links.py). The token is the capability itself, stored as is because the owner's list shows it
-- (the contract puts it in every Link): 32 random bytes, URL-safe (256 bits), so it cannot be guessed. The
-- password, if any, is an argon2id hash. expires_at is RFC 3339 UTC text in now_iso()'s format, so it compares
-- as text. downloads is raised by one conditional UPDATE in the writer transaction, so max_downloads grants
-- exactly that many downloads. Revoking deletes the row. A link's files are its link_files rows; file_id is
-- the file of a link made for one file (POST /files/{id}/links), NULL for a link to several (POST /links).
-- owner_id: whose links they are (GET /links).
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
INSERT INTO links (id, uuid, file_id, token, password_hash, expires_at, max_downloads, downloads, created_at, owner_id)
    SELECT l.id, l.uuid, l.file_id, l.token, l.password_hash, l.expires_at, l.max_downloads, l.downloads,
           l.created_at, f.owner_id
    FROM links_old l JOIN files f ON f.id = l.file_id;
DROP TABLE links_old;
CREATE INDEX links_file ON links (file_id, id DESC);
CREATE INDEX links_owner ON links (owner_id, id DESC);
-- link_files: a link's files, in the order they were given (position); one row for a one-file link.
CREATE TABLE link_files (
    link_id  INTEGER NOT NULL REFERENCES links (id) ON DELETE CASCADE,
    file_id  INTEGER NOT NULL REFERENCES files (id),
    position INTEGER NOT NULL,
    PRIMARY KEY (link_id, file_id)
) WITHOUT ROWID;
CREATE INDEX link_files_file ON link_files (file_id);
INSERT INTO link_files (link_id, file_id, position) SELECT id, file_id, 0 FROM links;

-- 0006: integrity. sha256: the lowercase hex SHA-256 of a version's content, NULL until known (declared at
-- upload, or computed the first time cdnstore reads the bytes). sha256_declared: the client declared it
-- (a single PUT is then bound to it by the storage server; a multipart one is checked on first read).
-- verify_pending: its SHA-256 still waits for a first read by cdnstore (the integrity verifier reads it
-- when no copy will). rejected_at: its content turned out not to match the declared SHA-256 (never served
-- nor copied again; its status is then 'deleted').
ALTER TABLE versions ADD COLUMN sha256 TEXT CHECK (length(sha256) = 64 AND sha256 NOT GLOB '*[^0-9a-f]*');
ALTER TABLE versions ADD COLUMN sha256_declared INTEGER NOT NULL DEFAULT 0 CHECK (sha256_declared IN (0, 1));
ALTER TABLE versions ADD COLUMN verify_pending INTEGER NOT NULL DEFAULT 0 CHECK (verify_pending IN (0, 1));
ALTER TABLE versions ADD COLUMN rejected_at TEXT;
CREATE INDEX versions_verify_pending ON versions (id) WHERE verify_pending = 1;
-- A replica's state: 'corrupt' when its bytes were found to differ from the version's sha256 (being
-- replaced; never served). verified_at: when cdnstore last read these bytes back and they matched. The
-- counters on servers count every row, corrupt ones too (the object is there, taking its bytes).
ALTER TABLE replicas ADD COLUMN status TEXT NOT NULL DEFAULT 'present' CHECK (status IN ('present', 'corrupt'));
ALTER TABLE replicas ADD COLUMN verified_at TEXT;
CREATE INDEX replicas_verified ON replicas (verified_at);

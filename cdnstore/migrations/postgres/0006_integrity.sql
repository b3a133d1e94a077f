-- 0006: integrity (see the SQLite migration of the same number for what each column means).
ALTER TABLE versions ADD COLUMN sha256 TEXT CHECK (sha256 ~ '^[0-9a-f]{64}$');
ALTER TABLE versions ADD COLUMN sha256_declared INTEGER NOT NULL DEFAULT 0 CHECK (sha256_declared IN (0, 1));
ALTER TABLE versions ADD COLUMN verify_pending INTEGER NOT NULL DEFAULT 0 CHECK (verify_pending IN (0, 1));
ALTER TABLE versions ADD COLUMN rejected_at TEXT;
CREATE INDEX versions_verify_pending ON versions (id) WHERE verify_pending = 1;
-- replicas.status 'corrupt', verified_at: see the SQLite migration of the same number.
ALTER TABLE replicas ADD COLUMN status TEXT NOT NULL DEFAULT 'present' CHECK (status IN ('present', 'corrupt'));
ALTER TABLE replicas ADD COLUMN verified_at TEXT;
CREATE INDEX replicas_verified ON replicas (verified_at);

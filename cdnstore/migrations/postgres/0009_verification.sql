-- 0009: verification back-off and replica ETags (see the SQLite migration of the same number).
ALTER TABLE versions ADD COLUMN verify_attempts INTEGER NOT NULL DEFAULT 0 CHECK (verify_attempts >= 0);
ALTER TABLE versions ADD COLUMN verify_after TEXT;
CREATE INDEX versions_rejected ON versions (rejected_at) WHERE rejected_at IS NOT NULL;
-- replicas.etag: the ETag the server gave for a replica's bytes (see the SQLite migration of the same number).
ALTER TABLE replicas ADD COLUMN etag TEXT;

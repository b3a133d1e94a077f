-- 0009: verification that no version can stall, and replicas that can be told apart from a rewrite.
-- versions.verify_attempts: the verifier's reads of a version awaiting its first read that settled nothing
-- (bytes that changed between two reads, a read that failed); after integrity.verify_attempts of them the
-- version gets its final verdict (integrity.py). verify_after: not read again before this time (the
-- back-off after such a read; NULL: due now).
ALTER TABLE versions ADD COLUMN verify_attempts INTEGER NOT NULL DEFAULT 0 CHECK (verify_attempts >= 0);
ALTER TABLE versions ADD COLUMN verify_after TEXT;
-- Rejected uploads of the last days, per upload server, for the servers page.
CREATE INDEX versions_rejected ON versions (rejected_at) WHERE rejected_at IS NOT NULL;
-- replicas.etag: the ETag the server gave for these bytes when cdnstore recorded them (the upload's, or the
-- copy's own); a storage event for the key whose object now has another ETag was a rewrite. NULL: unknown
-- (recorded before 0009).
ALTER TABLE replicas ADD COLUMN etag TEXT;

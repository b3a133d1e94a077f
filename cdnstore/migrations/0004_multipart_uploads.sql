-- 0004: a version larger than uploads.multipart_threshold is uploaded in parts, straight to its upload
-- server: the multipart upload's id there and the size of its parts (all but the last). NULL: one PUT.
ALTER TABLE versions ADD COLUMN upload_id TEXT;
ALTER TABLE versions ADD COLUMN part_size INTEGER CHECK (part_size > 0);

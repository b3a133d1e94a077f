-- 0013: a share link may name several files (issue 27): link_files holds every link's files, in the order
-- given (one row for a one-file link); links.file_id is NULL for a link to several; links.owner_id lists a
-- user's links without a walk through their files.
ALTER TABLE links ALTER COLUMN file_id DROP NOT NULL;
-- owner_id: whose links they are (GET /links); file_id: the file of a link made for one file, NULL for a link to
-- several, whose files are its link_files rows.
ALTER TABLE links ADD COLUMN owner_id BIGINT REFERENCES users (id);
UPDATE links SET owner_id = (SELECT owner_id FROM files WHERE files.id = links.file_id);
ALTER TABLE links ALTER COLUMN owner_id SET NOT NULL;
CREATE INDEX links_owner ON links (owner_id, id DESC);
-- link_files: a link's files, in the order they were given (position); one row for a one-file link.
CREATE TABLE link_files (
    link_id  BIGINT  NOT NULL REFERENCES links (id) ON DELETE CASCADE,
    file_id  BIGINT  NOT NULL REFERENCES files (id),
    position INTEGER NOT NULL,
    PRIMARY KEY (link_id, file_id)
);
CREATE INDEX link_files_file ON link_files (file_id);
INSERT INTO link_files (link_id, file_id, position) SELECT id, file_id, 0 FROM links;

-- 0003: a storage server may have its own events token (POST/PATCH servers `events_token`), accepted only
-- on its own webhook path. Only the token's SHA-256 (lowercase hex) is kept: a long random bearer token
-- needs no slow hash, and the table never holds the token itself. NULL: the server takes events.token.
ALTER TABLE servers ADD COLUMN events_token_hash TEXT CHECK (length(events_token_hash) = 64);

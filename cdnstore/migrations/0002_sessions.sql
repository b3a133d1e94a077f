-- 0002: sessions, so that access tokens end with their session (logout, new password, reuse).
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

-- The logins made before this migration: a family all of whose tokens are revoked has ended.
INSERT INTO sessions (id, user_id, created_at, ended_at)
    SELECT family, min(user_id), min(created_at),
           CASE WHEN count(revoked_at) = count(*) THEN max(revoked_at) END
    FROM refresh_tokens GROUP BY family;

-- 0010: usernames compared ignoring case, and when each user last logged in.
-- Usernames are compared ignoring the case of their letters (usernames are ASCII: [A-Za-z0-9_.@-]), and
-- kept as spelled. username_key is the lowercased name of the account that holds it, unique: "Alice" cannot be
-- created beside "alice", and either spelling logs in. NULL holds no name: deleted users (renamed
-- "deleted:<uuid>"), and accounts made before this that clash in case with an older one: the oldest keeps the
-- key, the others keep their names and log in with their exact spelling (nothing is renamed, nobody locked out).
-- lower() under COLLATE "C" changes ASCII letters only, as SQLite's and the daemon's (whatever the locale).
ALTER TABLE users ADD COLUMN username_key TEXT;
UPDATE users SET username_key = lower(username COLLATE "C")
WHERE deleted_at IS NULL
  AND id = (SELECT min(u.id) FROM users u
            WHERE u.deleted_at IS NULL AND lower(u.username COLLATE "C") = lower(users.username COLLATE "C"));
CREATE UNIQUE INDEX users_by_username_key ON users (username_key);
-- last_login_at: the user's latest successful login (NULL: none since 0010). Password checks of an account
-- that logged in lately wait in a room of their own (auth.Priority): a flood cannot shut its owner out.
ALTER TABLE users ADD COLUMN last_login_at TEXT;

-- 0008: several daemons on one database (PostgreSQL; SQLite has the tables too, one schema to reason about).
-- cache_versions: a counter per in-memory copy (servers, users, sessions), raised in the transaction of
-- every change; each daemon compares it every second and reloads the copy that moved (changes.py).
CREATE TABLE cache_versions (
    topic   TEXT    PRIMARY KEY,
    version INTEGER NOT NULL
) WITHOUT ROWID;

-- throttle_failures: one row per counted failure (wrong login or link password, an upload announced),
-- so that the throttles count across daemons (db/throttles.py; SQLite's daemon counts in memory instead).
-- `at` is unix seconds; rows older than their throttle's window are deleted as new ones come.
CREATE TABLE throttle_failures (
    scope TEXT NOT NULL,
    key   TEXT NOT NULL,
    at    REAL NOT NULL
);
CREATE INDEX throttle_failures_key ON throttle_failures (scope, key, at);
CREATE INDEX throttle_failures_age ON throttle_failures (scope, at);

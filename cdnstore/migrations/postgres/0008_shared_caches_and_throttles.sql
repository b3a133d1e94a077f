-- 0008: several daemons on one database.
-- cache_versions: a counter per in-memory copy (servers, users, sessions), raised in the transaction of
-- every change; each daemon compares it every second and reloads the copy that moved (changes.py).
CREATE TABLE cache_versions (
    topic   TEXT    PRIMARY KEY,
    version BIGINT  NOT NULL
);

-- throttle_failures: one row per counted failure (wrong login or link password, an upload announced),
-- so that the throttles count across daemons (db/throttles.py). `at` is unix seconds; rows older than their
-- throttle's window are deleted as new ones come.
CREATE TABLE throttle_failures (
    scope TEXT NOT NULL,
    key   TEXT NOT NULL,
    at    DOUBLE PRECISION NOT NULL
);
CREATE INDEX throttle_failures_key ON throttle_failures (scope, key, at);
CREATE INDEX throttle_failures_age ON throttle_failures (scope, at);

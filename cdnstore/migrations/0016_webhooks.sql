-- 0016: outgoing webhooks (webhooks.py, webhook_queue.py, webhook_worker.py).
-- webhooks: a user's endpoint; secret is its whsec_ signing secret, sealed (sealing.py), never shown again.
CREATE TABLE webhooks (
    id         INTEGER PRIMARY KEY,
    uuid       TEXT    NOT NULL UNIQUE,
    owner_id   INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    url        TEXT    NOT NULL,
    secret     TEXT    NOT NULL,
    created_at TEXT    NOT NULL
);
CREATE INDEX webhooks_owner ON webhooks (owner_id, id DESC);

-- What each webhook subscribes to, one row per event, with its owner, so that a user's subscribers of an
-- event (and a fleet event's, all of them) are found in this table's key alone.
CREATE TABLE webhook_events (
    event      TEXT    NOT NULL,
    owner_id   INTEGER NOT NULL,
    webhook_id INTEGER NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    PRIMARY KEY (event, owner_id, webhook_id)
) WITHOUT ROWID;
CREATE INDEX webhook_events_webhook ON webhook_events (webhook_id);

-- One event for one webhook: the outbox row, written in the transaction of what it tells (a user's event
-- with its history row: history.record), and its delivery log. uuid is its webhook-id (msg_...), the same on
-- every attempt. A worker claims a pending one due by run_after (unix seconds) under a new claim_token,
-- setting run_after to the end of its lease: a claim whose daemon died is due again then. Retried with
-- backoff until webhooks.retry_for after occurred_at, then 'failed'; delivered and failed ones are deleted
-- webhooks.log_days after they occurred.
CREATE TABLE webhook_deliveries (
    id           INTEGER PRIMARY KEY,
    uuid         TEXT    NOT NULL UNIQUE,
    webhook_id   INTEGER NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    event        TEXT    NOT NULL,
    object_id    TEXT,
    data         TEXT    NOT NULL DEFAULT '{}',
    occurred_at  TEXT    NOT NULL,
    status       TEXT    NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts     INTEGER NOT NULL DEFAULT 0,
    run_after    REAL    NOT NULL DEFAULT 0,
    claim_token  TEXT,
    last_error   TEXT,
    delivered_at TEXT
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (run_after) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_log ON webhook_deliveries (webhook_id, id DESC);
CREATE INDEX webhook_deliveries_done ON webhook_deliveries (occurred_at) WHERE status != 'pending';

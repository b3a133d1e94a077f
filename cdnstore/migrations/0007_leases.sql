-- 0007: several daemons. A job's claim carries a token (a uuid per claim): a daemon finishes, fails or
-- postpones a job only while the token is still its own, so one whose lease ran out (and the job was
-- taken over) changes nothing. Periodic work (health checks, the upload sweep, scrub) runs where its
-- named lease is held: one daemon at a time; a dead holder's lease runs out and another takes it.
ALTER TABLE jobs ADD COLUMN claim_token TEXT;
-- Named leases (db/leases.py): periodic work runs where its lease is held, on one daemon at a time; a
-- holder renews it while alive, and a dead holder's lease runs out (until, unix seconds) for another.
CREATE TABLE leases (
    name   TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    until  REAL NOT NULL  -- unix seconds
);

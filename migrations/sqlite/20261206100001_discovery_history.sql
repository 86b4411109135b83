-- A discovered service whose Service is gone is retired, not deleted: its snapshots,
-- alerts and error history stay for the retention period and its pages still resolve.
-- Additive: a release before this one deletes the row as it did, and the snapshots stay.
ALTER TABLE service ADD COLUMN retired_at TEXT;

-- rollback-safe: SQLite cannot drop a constraint, so the snapshots move to a table of the
-- same columns and indexes without the cascade; an older release reads and writes it alike.
CREATE TABLE service_snapshot_kept (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    service        TEXT NOT NULL,
    taken_at       TEXT NOT NULL,
    reachable      BOOLEAN NOT NULL,
    error          TEXT,
    running        BIGINT,
    stuck          BIGINT,
    failed         BIGINT,
    completed      BIGINT,
    failed_batches BIGINT,
    -- [{"amount": "12.34", "currency": "EUR"}]: decimals as strings, never floats
    withheld_funds TEXT NOT NULL,
    reconstructed  BOOLEAN NOT NULL DEFAULT FALSE
);
INSERT INTO service_snapshot_kept
    (id, service, taken_at, reachable, error, running, stuck, failed, completed,
     failed_batches, withheld_funds, reconstructed)
SELECT id, service, taken_at, reachable, error, running, stuck, failed, completed,
       failed_batches, withheld_funds, reconstructed
FROM service_snapshot;
DROP TABLE service_snapshot;
ALTER TABLE service_snapshot_kept RENAME TO service_snapshot;
CREATE INDEX service_snapshot_by_service_time ON service_snapshot (service, taken_at);
CREATE INDEX service_snapshot_by_time ON service_snapshot (taken_at);

-- Each name found in the cluster belongs to the namespace that registered it first: a
-- Service elsewhere labelled with it later is left out, whatever order they are listed in.
CREATE TABLE service_name_binding (
    name      TEXT PRIMARY KEY NOT NULL,
    namespace TEXT NOT NULL,
    bound_at  TEXT NOT NULL
);
-- The names registered from the cluster now stay with their namespaces.
INSERT INTO service_name_binding (name, namespace, bound_at)
SELECT name, substr(source, 9, instr(substr(source, 9), '/') - 1), registered_at
FROM service WHERE source LIKE 'cluster:%';

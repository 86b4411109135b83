-- A discovered service whose Service is gone is retired, not deleted: its snapshots,
-- alerts and error history stay for the retention period and its pages still resolve.
-- Additive: a release before this one deletes the row as it did, and the snapshots stay.
ALTER TABLE service ADD COLUMN retired_at TIMESTAMPTZ;
ALTER TABLE service_snapshot DROP CONSTRAINT IF EXISTS service_snapshot_service_fkey;

-- Each name found in the cluster belongs to the namespace that registered it first: a
-- Service elsewhere labelled with it later is left out, whatever order they are listed in.
CREATE TABLE service_name_binding (
    name      TEXT PRIMARY KEY,
    namespace TEXT NOT NULL,
    bound_at  TIMESTAMPTZ NOT NULL
);
-- The names registered from the cluster now stay with their namespaces.
INSERT INTO service_name_binding (name, namespace, bound_at)
SELECT name, split_part(substr(source, 9), '/', 1), registered_at
FROM service WHERE source LIKE 'cluster:%';

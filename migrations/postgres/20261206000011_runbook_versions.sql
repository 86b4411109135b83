-- A saved runbook's earlier versions (#30): changing one keeps what it was, with who wrote
-- it and when, so that a change can be read back and undone. Additive.
CREATE TABLE runbook_version (
    runbook_id  TEXT NOT NULL REFERENCES runbook (id),
    description TEXT NOT NULL,
    steps       TEXT NOT NULL,
    updated_by  TEXT NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL,
    replaced_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX runbook_version_by_runbook ON runbook_version (runbook_id, replaced_at);

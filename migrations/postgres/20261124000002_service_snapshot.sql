-- What the poller read from each service, every interval; kept for trends until retention.
CREATE TABLE service_snapshot (
    id             BIGSERIAL PRIMARY KEY,
    service        TEXT NOT NULL REFERENCES service (name) ON DELETE CASCADE,
    taken_at       TIMESTAMPTZ NOT NULL,
    reachable      BOOLEAN NOT NULL,
    error          TEXT,
    running        BIGINT,
    stuck          BIGINT,
    failed         BIGINT,
    completed      BIGINT,
    failed_batches BIGINT,
    -- [{"amount": "12.34", "currency": "EUR"}]: decimals as strings, never floats
    withheld_funds TEXT NOT NULL
);
CREATE INDEX service_snapshot_by_service_time ON service_snapshot (service, taken_at);
CREATE INDEX service_snapshot_by_time ON service_snapshot (taken_at);

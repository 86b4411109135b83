-- The services Runboard watches.
CREATE TABLE service (
    name                TEXT PRIMARY KEY,
    team                TEXT NOT NULL,
    graphql_url         TEXT NOT NULL,
    stuck_after_seconds BIGINT NOT NULL CHECK (stuck_after_seconds > 0),
    source              TEXT NOT NULL,
    registered_at       TIMESTAMPTZ NOT NULL,
    updated_at          TIMESTAMPTZ NOT NULL
);

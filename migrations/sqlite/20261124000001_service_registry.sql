-- The services Runboard watches. Times are UTC, stored as RFC 3339 text.
CREATE TABLE service (
    name                TEXT PRIMARY KEY NOT NULL,
    team                TEXT NOT NULL,
    graphql_url         TEXT NOT NULL,
    stuck_after_seconds BIGINT NOT NULL CHECK (stuck_after_seconds > 0),
    source              TEXT NOT NULL,
    registered_at       TEXT NOT NULL,
    updated_at          TEXT NOT NULL
);

-- Browser sessions, written by tower-sessions (its PostgreSQL schema, in our own migrations).
-- `data` holds the signed-in user, their CSRF token and the sign-in time, or a pending OIDC login.
CREATE TABLE session (
    id          TEXT PRIMARY KEY NOT NULL,
    data        BYTEA NOT NULL,
    expiry_date TIMESTAMPTZ NOT NULL
);
CREATE INDEX session_by_expiry ON session (expiry_date);

-- Personal API tokens: only a SHA-256 of the secret is kept; the secret is shown once.
CREATE TABLE api_token (
    id            TEXT PRIMARY KEY,
    secret_sha256 TEXT NOT NULL UNIQUE,
    subject       TEXT NOT NULL,
    name          TEXT NOT NULL,
    -- ["operator","approver"]: the holder's roles when the token was issued
    roles         TEXT NOT NULL,
    label         TEXT NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL,
    expires_at    TIMESTAMPTZ NOT NULL,
    revoked_at    TIMESTAMPTZ,
    last_used_at  TIMESTAMPTZ
);
CREATE INDEX api_token_by_subject ON api_token (subject, created_at);

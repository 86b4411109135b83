-- Where to ask for the corrective action, for the watches that have one (new error, stalled batch).
ALTER TABLE alert ADD COLUMN ask_link TEXT;

-- The error messages each service's failed sagas carried within the watches' window: what
-- makes an error *new* is that no poll saw it there. Keyed by the message's first 500 characters.
CREATE TABLE error_seen (
    service      TEXT NOT NULL,
    error_key    TEXT NOT NULL,
    last_seen_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (service, error_key)
);

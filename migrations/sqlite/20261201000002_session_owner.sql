-- Whose each browser session is, written at sign-in, so that an admin can list a person's
-- sessions and end them all at once (tower-sessions keeps the person inside `data`).
CREATE TABLE session_owner (
    session_id   TEXT PRIMARY KEY NOT NULL,
    subject      TEXT NOT NULL,
    name         TEXT NOT NULL,
    signed_in_at TEXT NOT NULL
);
CREATE INDEX session_owner_by_subject ON session_owner (subject);

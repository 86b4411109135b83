-- The append-only audit log. Each entry's hash covers the previous entry's hash and its
-- own fields, so an edit, a deletion or a reordering breaks the chain from there on.
CREATE TABLE audit_entry (
    seq       BIGINT PRIMARY KEY,
    at        TIMESTAMPTZ NOT NULL,
    actor     TEXT NOT NULL,
    action_id TEXT,
    kind      TEXT NOT NULL,
    -- JSON, kept as the exact text that was hashed
    detail    TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash      TEXT NOT NULL
);
CREATE INDEX audit_entry_by_action ON audit_entry (action_id, seq);

-- The chain's head: appends lock this one row, so entries get consecutive numbers and
-- each sees the hash before it, on any number of replicas.
CREATE TABLE audit_head (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    seq  BIGINT NOT NULL,
    hash TEXT NOT NULL
);
INSERT INTO audit_head (id, seq, hash)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');

-- Corrective actions: what was asked, its preview (and the digest approvals bind to),
-- the approvals, and a result per entity, written as each call returns.
CREATE TABLE action (
    id               TEXT PRIMARY KEY,
    service          TEXT NOT NULL,
    mutation         TEXT NOT NULL,
    state            TEXT NOT NULL,
    state_detail     TEXT,
    requester        TEXT NOT NULL,
    requester_name   TEXT NOT NULL,
    reason           TEXT,
    incident_url     TEXT,
    -- the Preview as JSON, and the SHA-256 of exactly that text
    preview          TEXT NOT NULL,
    digest           TEXT NOT NULL,
    dry_run_offered  BOOLEAN NOT NULL,
    approvals_needed INTEGER NOT NULL,
    created_at       TIMESTAMPTZ NOT NULL,
    expires_at       TIMESTAMPTZ NOT NULL,
    updated_at       TIMESTAMPTZ NOT NULL,
    -- the execution engine's lease: another Runboard may take over once it has passed
    leased_until     TIMESTAMPTZ
);
CREATE INDEX action_by_state ON action (state, updated_at);
CREATE INDEX action_by_requester ON action (requester, created_at);

CREATE TABLE action_approval (
    action_id     TEXT NOT NULL REFERENCES action (id),
    approver      TEXT NOT NULL,
    approver_name TEXT NOT NULL,
    digest        TEXT NOT NULL,
    at            TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (action_id, approver)
);

CREATE TABLE action_entity (
    action_id  TEXT NOT NULL REFERENCES action (id),
    entity_id  TEXT NOT NULL,
    position   INTEGER NOT NULL,
    state      TEXT NOT NULL,
    attempts   INTEGER NOT NULL,
    detail     TEXT,
    updated_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (action_id, entity_id)
);
CREATE INDEX action_entity_pending ON action_entity (action_id, state, position);

-- An entity held by an action from submission until it ends: two actions may not act on
-- the same entity at once.
CREATE TABLE entity_hold (
    service   TEXT NOT NULL,
    entity_id TEXT NOT NULL,
    action_id TEXT NOT NULL REFERENCES action (id),
    PRIMARY KEY (service, entity_id)
);
CREATE INDEX entity_hold_by_action ON entity_hold (action_id);

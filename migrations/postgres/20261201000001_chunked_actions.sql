-- Actions at fleet scale (SPEC.md, "Execute"): calls go in chunks whose members are fixed
-- and stored before the first call, each with its own idempotency key; the preview's
-- per-entity part lives in rows rather than in the action's preview JSON, so that an
-- action of 100,000 entities reads, pages and digests without holding all of it at once.

-- One call's worth of an action's entities. A chunk the service refuses as a whole is
-- split into two new chunks (parent names it), so that one entity the service objects to
-- does not fail its neighbours; a split chunk is never sent again.
CREATE TABLE action_chunk (
    action_id       TEXT NOT NULL REFERENCES action (id),
    chunk           INTEGER NOT NULL,
    parent          INTEGER,
    -- pending | succeeded | failed | split
    state           TEXT NOT NULL,
    members         INTEGER NOT NULL,
    -- Always the same entities: 'runboard:<action>:<chunk>' (one entity per chunk for
    -- actions made before chunks: 'runboard:<action>:<entity>', the key they were sent with).
    idempotency_key TEXT NOT NULL,
    -- The effects the approved dry run listed for these members, as JSON; NULL when the
    -- mutation offers no dry run.
    planned         TEXT,
    -- The effects the real call reported, as JSON, or why it failed.
    outcome         TEXT,
    attempts        INTEGER NOT NULL,
    -- The lease epoch under which the chunk was last sent, written before it leaves (see
    -- the fenced execution migration: a chunk that has one may have been applied).
    sent_epoch      BIGINT,
    updated_at      TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (action_id, chunk)
);
CREATE INDEX action_chunk_pending ON action_chunk (action_id, state, chunk);

ALTER TABLE action_entity ADD COLUMN chunk INTEGER NOT NULL DEFAULT 0;
-- The entity as the preview found it in the service's database.
ALTER TABLE action_entity ADD COLUMN found TEXT;
ALTER TABLE action_entity ADD COLUMN held_amount TEXT;
ALTER TABLE action_entity ADD COLUMN held_currency TEXT;
CREATE INDEX action_entity_by_chunk ON action_entity (action_id, chunk, position);
-- The action page lists its entities a page at a time, in the order they were named.
CREATE INDEX action_entity_by_position ON action_entity (action_id, position);
-- A saga's page lists the actions that touched it: found by entity, not by scanning them all.
CREATE INDEX action_entity_by_entity ON action_entity (entity_id);

-- Progress as counters updated with each recorded chunk, not counted again on every read.
ALTER TABLE action ADD COLUMN entity_count BIGINT NOT NULL DEFAULT 0;
ALTER TABLE action ADD COLUMN succeeded_count BIGINT NOT NULL DEFAULT 0;
ALTER TABLE action ADD COLUMN failed_count BIGINT NOT NULL DEFAULT 0;

-- Actions made before chunks: one chunk per entity, under the key it was (or will be)
-- sent with, so that an upgrade mid-action never sends an entity under a new key.
UPDATE action_entity SET chunk = position;
INSERT INTO action_chunk (action_id, chunk, parent, state, members, idempotency_key, planned,
                          outcome, attempts, sent_epoch, updated_at)
    SELECT action_id, position, NULL, state, 1, 'runboard:' || action_id || ':' || entity_id,
           NULL, detail, attempts, sent_epoch, updated_at
    FROM action_entity;
UPDATE action SET
    entity_count = (SELECT COUNT(*) FROM action_entity e WHERE e.action_id = action.id),
    succeeded_count = (SELECT COUNT(*) FROM action_entity e WHERE e.action_id = action.id AND e.state = 'succeeded'),
    failed_count = (SELECT COUNT(*) FROM action_entity e WHERE e.action_id = action.id AND e.state = 'failed');
ALTER TABLE action_entity DROP COLUMN sent_epoch;

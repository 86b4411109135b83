-- Runbooks (#17): several steps per entity, approved as one action.
-- The step whose calls the engine sends now; the steps run one after the other.
ALTER TABLE action ADD COLUMN current_step INTEGER NOT NULL DEFAULT 0;
-- A runbook's call belongs to one step and one entity, and carries that entity's own
-- variables (filled in from its data, the entity list aside). Chunk numbers run on across
-- the steps, so (action_id, chunk) stays the key. An action of one mutation keeps step 0
-- and NULLs: its chunks are what they were.
ALTER TABLE action_chunk ADD COLUMN step INTEGER NOT NULL DEFAULT 0;
ALTER TABLE action_chunk ADD COLUMN entity_id TEXT;
ALTER TABLE action_chunk ADD COLUMN variables TEXT;
-- An entity's calls, step by step: its story on the action's page, and its later steps
-- skipped when one fails.
CREATE INDEX action_chunk_by_entity ON action_chunk (action_id, entity_id, step);

-- Runbooks kept under a name per service, to be started on any selection: their steps
-- (mutation, arguments with placeholders) as JSON, checked against the service's catalog
-- when saved.
CREATE TABLE runbook (
    id          TEXT PRIMARY KEY,
    service     TEXT NOT NULL,
    name        TEXT NOT NULL,
    description TEXT NOT NULL,
    steps       TEXT NOT NULL,
    created_by  TEXT NOT NULL,
    updated_by  TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    UNIQUE (service, name)
);

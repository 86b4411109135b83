-- A chunk's members are a range of positions, kept on the chunk's row (PostgreSQL's
-- migration of the same name says why). SQLite's store keeps its index by chunk, and the
-- statements, the same on both, name the range as well.
ALTER TABLE action_chunk ADD COLUMN first_position INTEGER;
ALTER TABLE action_chunk ADD COLUMN last_position INTEGER;
UPDATE action_chunk SET
    first_position = (SELECT MIN(position) FROM action_entity e
                      WHERE e.action_id = action_chunk.action_id AND e.chunk = action_chunk.chunk),
    last_position = (SELECT MAX(position) FROM action_entity e
                     WHERE e.action_id = action_chunk.action_id AND e.chunk = action_chunk.chunk)
WHERE entity_id IS NULL;

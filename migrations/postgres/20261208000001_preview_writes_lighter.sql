-- A preview of a million entities writes a million rows of action_entity, and each row
-- paid for more than its place in the key: a check that its action exists (one query per
-- row, for a row written in the same transaction as its action, by the one writer of these
-- rows; actions are never deleted), a place in an index by chunk, and a place in a B-tree by
-- entity, where random IDs land on random pages. Measured with psql on this machine, nothing
-- else running, COPY of a million rows as a preview writes them (three runs each): 7.3-8.3 s
-- with the check and all three indexes; 4.1-4.6 s without the check and the index by chunk;
-- 2.6-2.8 s with the index by entity a hash; 1.8 s with the key alone. And a chunk's planned
-- effects, a thousand to a chunk, some 230 MB of JSON for a million, were compressed with
-- pglz: lz4 takes 0.7 s where pglz took 1.6 s, for as small a result (README, "Beyond 100,000
-- entities").
--
-- A chunk's members are a range of positions (a preview numbers its entities in order and
-- fills each chunk in turn; a refused chunk splits into its two halves by position): the
-- chunk's row keeps the range, and its members are found through the key. The index by
-- entity serves the saga page's "actions that touched it" and a runbook's lookup of its
-- entity: a hash finds them as well, and costs less to write. An entity is named once per
-- action by the preview, and once per service by the holds (entity_hold's key).
--
-- An older release still works on it (none of its statements names the constraint or an
-- index), more slowly while it reads a chunk's members; a chunk it writes has no range and
-- is found among all its action's entities (`in_chunk`).
ALTER TABLE action_chunk ADD COLUMN first_position INTEGER;
ALTER TABLE action_chunk ADD COLUMN last_position INTEGER;
UPDATE action_chunk c SET first_position = m.first_position, last_position = m.last_position
FROM (SELECT action_id, chunk, MIN(position) AS first_position, MAX(position) AS last_position
      FROM action_entity GROUP BY action_id, chunk) m
WHERE c.action_id = m.action_id AND c.chunk = m.chunk AND c.entity_id IS NULL;
ALTER TABLE action_entity DROP CONSTRAINT action_entity_action_id_fkey;
DROP INDEX action_entity_by_chunk;
DROP INDEX action_entity_by_entity;
CREATE INDEX action_entity_by_entity ON action_entity USING hash (entity_id);
-- A PostgreSQL built without lz4 keeps pglz.
DO $$
BEGIN
    ALTER TABLE action_chunk ALTER COLUMN planned SET COMPRESSION lz4;
    ALTER TABLE action_chunk ALTER COLUMN outcome SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported THEN
    NULL;
END
$$;

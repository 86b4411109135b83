-- An action's entities were indexed by state, so each of a million entities a preview
-- writes paid for one more index entry, and no result could be written in place: every
-- result that moved an entity wrote a new row version and an entry in each index. Now no
-- index names a column a result changes (state, attempts, detail, updated_at), and each page
-- keeps half its room free, so PostgreSQL writes a result beside its row (a HOT update)
-- without touching an index. Measured with psql on a million rows: README, "Beyond 100,000
-- entities". The action page's filter by state reads in position order instead. An older
-- release still works on it: none of its statements names the index.
DROP INDEX action_entity_pending;
ALTER TABLE action_entity SET (fillfactor = 50);

-- As on PostgreSQL (its migration of the same name says why): no index by state, which each
-- result that moved an entity had to rewrite. SQLite keeps no free room per page to set.
DROP INDEX action_entity_pending;

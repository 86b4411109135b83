-- A client's Idempotency-Key on a request for an action (#30): the same person's retry
-- under the same key finds the action its first request made. The digest of the request
-- tells a retry from a different request reusing the key. Additive: an older release
-- leaves both NULL.
ALTER TABLE action ADD COLUMN request_key TEXT;
ALTER TABLE action ADD COLUMN request_digest TEXT;
CREATE UNIQUE INDEX action_by_request_key ON action (requester, request_key) WHERE request_key IS NOT NULL;

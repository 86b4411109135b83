-- The execution engine's fenced lease on an action (SPEC.md: only the replica holding an
-- action's fenced lease may send or record its calls). The epoch rises at every take-over
-- and the row stays when a lease ends (expires_ms = 0), so epochs never repeat. Every
-- write the engine makes for an action names owner and epoch; a replica that lost the
-- lease writes nothing. Deadlines are the store's clock, in ms since the Unix epoch, so
-- replicas with drifting clocks agree on them.
CREATE TABLE action_lease (
    action_id  TEXT PRIMARY KEY REFERENCES action (id),
    owner      TEXT NOT NULL,
    epoch      BIGINT NOT NULL,
    expires_ms BIGINT NOT NULL
);
ALTER TABLE action DROP COLUMN leased_until;

-- The lease epoch under which an entity's call was last sent, written before it leaves: a
-- pending entity that has one may have been applied (its call was in flight, or its result
-- was lost with its replica), so it is only ever sent again with the same idempotency key,
-- and it counts as in flight until its result is recorded or its lease has ended.
ALTER TABLE action_entity ADD COLUMN sent_epoch BIGINT;

-- One poll per service per interval however many replicas run: the replica that claims a
-- (service, slot) polls it; slot = the store's clock divided by the interval.
CREATE TABLE poll_claim (
    service TEXT NOT NULL,
    slot    BIGINT NOT NULL,
    owner   TEXT NOT NULL,
    PRIMARY KEY (service, slot)
);

-- An action's pace and how its execution goes (#33). `pace` is the action's own pace as
-- JSON ({"entities_per_second": 500}), set at the request or by an operator while it runs,
-- read by whichever replica holds the lease; NULL: the service's default. `execution` is the
-- engine's last measure (rate, calls in flight, the brake), as JSON. `dry_run_ms`: how long
-- the preview's dry run took, for the estimate of the run (kept out of the digested preview,
-- which must not change with the machine's speed). Additive: an older release leaves them
-- NULL and ignores them.
ALTER TABLE action ADD COLUMN pace TEXT;
ALTER TABLE action ADD COLUMN execution TEXT;
ALTER TABLE action ADD COLUMN dry_run_ms BIGINT;

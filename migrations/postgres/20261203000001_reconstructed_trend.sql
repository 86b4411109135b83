-- Points of the 24-hour trend from before Runboard's first poll of a service, counted from
-- the service's own timestamps (a lower bound: sagas that recovered since are not seen).
ALTER TABLE service_snapshot ADD COLUMN reconstructed BOOLEAN NOT NULL DEFAULT FALSE;
-- Which replica fills a service's trend: the one whose UPDATE sets this first.
ALTER TABLE service ADD COLUMN trend_filled_at TIMESTAMPTZ;

-- Alerts the watches raise from the polls, and silences people set. The service is kept by
-- name, not as a reference: an alert outlives a service retired from the registry.
CREATE TABLE alert (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    service           TEXT NOT NULL,
    watch             TEXT NOT NULL,
    -- What in the service the alert is about (a currency); '' where a watch fires once per service.
    subject           TEXT NOT NULL,
    summary           TEXT NOT NULL,
    link              TEXT NOT NULL,
    fired_at          TEXT NOT NULL,
    last_seen_at      TEXT NOT NULL,
    -- Set by the replica that tells the team, in the same statement that checks it is unset.
    notified_at       TEXT,
    reminded_at       TEXT,
    acknowledged_by   TEXT,
    acknowledged_at   TEXT,
    acknowledged_note TEXT,
    resolved_at       TEXT
);
-- One open alert per service, watch and subject, however many replicas see the condition.
CREATE UNIQUE INDEX alert_open ON alert (service, watch, subject) WHERE resolved_at IS NULL;
CREATE INDEX alert_by_resolved_at ON alert (resolved_at);

CREATE TABLE alert_silence (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    -- NULL: every service; NULL watch: every watch.
    service    TEXT,
    watch      TEXT,
    until      TEXT NOT NULL,
    reason     TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX alert_silence_by_until ON alert_silence (until);

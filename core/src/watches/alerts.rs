//! The alerts and silences in the store, and the statements that keep each alert opened,
//! told and resolved once however many replicas judge the polls.

use chrono::{DateTime, Utc};
use runboard_model::{Acknowledgement, Alert, AlertBoard, AlertState, ServiceName, Silence, Watch};

use super::{Condition, Told};
use crate::db::on_pool;
use crate::store::{Store, StoreError};

/// How long resolved alerts stay on the board.
const RESOLVED_SHOWN: chrono::Duration = chrono::Duration::days(7);

const ALERT_COLUMNS: &str = "id, service, watch, subject, summary, link, ask_link, fired_at, last_seen_at, \
     notified_at, reminded_at, acknowledged_by, acknowledged_at, acknowledged_note, resolved_at";

type AlertRow = (
    i64,
    String,
    String,
    String,
    String,
    String,
    Option<String>,
    DateTime<Utc>,
    DateTime<Utc>,
    Option<DateTime<Utc>>,
    Option<DateTime<Utc>>,
    Option<String>,
    Option<DateTime<Utc>>,
    Option<String>,
    Option<DateTime<Utc>>,
);

/// An alert as stored, with what only the store needs to know.
struct Stored {
    alert: Alert,
    notified_at: Option<DateTime<Utc>>,
    reminded_at: Option<DateTime<Utc>>,
}

fn stored(row: AlertRow, silences: &[Silence], now: DateTime<Utc>) -> Result<Stored, StoreError> {
    let (
        id,
        service,
        watch,
        subject,
        summary,
        link,
        ask_link,
        fired_at,
        last_seen_at,
        notified_at,
        reminded_at,
        acknowledged_by,
        acknowledged_at,
        acknowledged_note,
        resolved_at,
    ) = row;
    let service: ServiceName = service.parse().map_err(StoreError::corrupt)?;
    let watch: Watch = watch.parse().map_err(StoreError::corrupt)?;
    let acknowledged = acknowledged_at.map(|at| Acknowledgement {
        by: acknowledged_by.unwrap_or_default(),
        at,
        note: acknowledged_note.unwrap_or_default(),
    });
    let state = if resolved_at.is_some() {
        AlertState::Resolved
    } else if acknowledged.is_some() {
        AlertState::Acknowledged
    } else if silences.iter().any(|s| s.covers(&service, watch, now)) {
        AlertState::Silenced
    } else {
        AlertState::Firing
    };
    Ok(Stored {
        alert: Alert {
            id,
            service,
            watch,
            subject,
            summary,
            link,
            ask_link,
            state,
            fired_at,
            last_seen_at,
            acknowledged,
            resolved_at,
        },
        notified_at,
        reminded_at,
    })
}

type SilenceRow = (
    i64,
    Option<String>,
    Option<String>,
    DateTime<Utc>,
    String,
    String,
    DateTime<Utc>,
);

fn silence(row: SilenceRow) -> Result<Silence, StoreError> {
    let (id, service, watch, until, reason, created_by, created_at) = row;
    Ok(Silence {
        id,
        service: service
            .map(|s| s.parse())
            .transpose()
            .map_err(StoreError::corrupt)?,
        watch: watch
            .map(|w| w.parse())
            .transpose()
            .map_err(StoreError::corrupt)?,
        until,
        reason,
        created_by,
        created_at,
    })
}

/// Why an alert could not be acknowledged.
#[derive(Debug, thiserror::Error)]
pub enum AcknowledgeError {
    #[error("there is no alert {0}")]
    Unknown(i64),
    #[error("alert {0} is resolved already: there is nothing left to acknowledge")]
    Resolved(i64),
    #[error("alert {id} was acknowledged already, by {by}")]
    Already { id: i64, by: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Store {
    /// Failed and stuck sagas of `service` in the latest snapshot at or before `at`
    /// (those reconstructed from the service's timestamps count), if there is one.
    pub(super) async fn failures_before(
        &self,
        service: &ServiceName,
        at: DateTime<Utc>,
    ) -> Result<Option<u64>, StoreError> {
        let row: Option<(Option<i64>,)> = on_pool!(self.pool, |pool| {
            sqlx::query_as(
                "SELECT stuck + failed FROM service_snapshot
                 WHERE service = $1 AND reachable AND taken_at <= $2
                 ORDER BY taken_at DESC LIMIT 1",
            )
            .bind(service)
            .bind(at)
            .fetch_optional(pool)
            .await?
        });
        Ok(row
            .and_then(|(n,)| n)
            .map(|n| u64::try_from(n).unwrap_or_default()))
    }

    /// How many polls of `service` failed in a row up to the latest.
    pub(super) async fn unreachable_streak(
        &self,
        service: &ServiceName,
    ) -> Result<u32, StoreError> {
        let (streak,): (i64,) = on_pool!(self.pool, |pool| {
            sqlx::query_as(
                "SELECT COUNT(*) FROM service_snapshot
                 WHERE service = $1 AND NOT reconstructed AND taken_at > COALESCE(
                     (SELECT MAX(taken_at) FROM service_snapshot
                      WHERE service = $1 AND reachable AND NOT reconstructed),
                     $2)",
            )
            .bind(service)
            .bind(DateTime::<Utc>::UNIX_EPOCH)
            .fetch_one(pool)
            .await?
        });
        Ok(u32::try_from(streak).unwrap_or(u32::MAX))
    }

    /// The error messages (their keys) failed sagas of `service` carried at some poll
    /// since `since`; those seen last before it are forgotten.
    pub(super) async fn errors_seen(
        &self,
        service: &ServiceName,
        since: DateTime<Utc>,
    ) -> Result<std::collections::HashSet<String>, StoreError> {
        let keys: Vec<(String,)> = on_pool!(self.pool, |pool| {
            sqlx::query("DELETE FROM error_seen WHERE service = $1 AND last_seen_at < $2")
                .bind(service)
                .bind(since)
                .execute(pool)
                .await?;
            sqlx::query_as("SELECT error_key FROM error_seen WHERE service = $1")
                .bind(service)
                .fetch_all(pool)
                .await?
        });
        Ok(keys.into_iter().map(|(key,)| key).collect())
    }

    /// Remembers that failed sagas of `service` carry these error messages (their keys) at `now`.
    pub(super) async fn saw_errors<'k>(
        &self,
        service: &ServiceName,
        keys: impl Iterator<Item = &'k str>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        // Messages alike in their first characters share a key, which a statement names once.
        let keys: Vec<&str> = keys
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        // A few hundred rows a statement: one round trip for the usual handful of errors,
        // and no statement past either database's limit on parameters.
        for chunk in keys.chunks(200) {
            let rows = (0..chunk.len())
                .map(|i| format!("($1, $2, ${})", i + 3))
                .collect::<Vec<_>>()
                .join(", ");
            let sql = format!(
                "INSERT INTO error_seen (service, last_seen_at, error_key) VALUES {rows}
                 ON CONFLICT (service, error_key) DO UPDATE SET last_seen_at = excluded.last_seen_at"
            );
            on_pool!(self.pool, |pool| {
                let mut query = sqlx::query(&sql).bind(service).bind(now);
                for key in chunk {
                    query = query.bind(*key);
                }
                query.execute(pool).await?;
            });
        }
        Ok(())
    }

    async fn silences_in_force(&self, now: DateTime<Utc>) -> Result<Vec<Silence>, StoreError> {
        let rows: Vec<SilenceRow> = on_pool!(self.pool, |pool| {
            sqlx::query_as(
                "SELECT id, service, watch, until, reason, created_by, created_at
                 FROM alert_silence WHERE until > $1 ORDER BY until",
            )
            .bind(now)
            .fetch_all(pool)
            .await?
        });
        rows.into_iter().map(silence).collect()
    }

    /// The services with an open alert of `watch`.
    pub(super) async fn services_alerted(
        &self,
        watch: Watch,
    ) -> Result<Vec<ServiceName>, StoreError> {
        let rows: Vec<(ServiceName,)> = on_pool!(self.pool, |pool| {
            sqlx::query_as(
                "SELECT DISTINCT service FROM alert WHERE watch = $1 AND resolved_at IS NULL",
            )
            .bind(watch.as_str())
            .fetch_all(pool)
            .await?
        });
        Ok(rows.into_iter().map(|(service,)| service).collect())
    }

    async fn open_alerts(
        &self,
        service: &ServiceName,
        now: DateTime<Utc>,
    ) -> Result<Vec<Stored>, StoreError> {
        let silences = self.silences_in_force(now).await?;
        let rows: Vec<AlertRow> = on_pool!(self.pool, |pool| {
            sqlx::query_as(&format!(
                "SELECT {ALERT_COLUMNS} FROM alert WHERE service = $1 AND resolved_at IS NULL"
            ))
            .bind(service)
            .fetch_all(pool)
            .await?
        });
        rows.into_iter()
            .map(|row| stored(row, &silences, now))
            .collect()
    }

    /// Keeps the alerts of `service` as one poll found them, and returns the messages due,
    /// each claimed for this replica by the statement that records it as told:
    /// - each condition's alert opened, or brought up to date if open;
    /// - the open alerts of the `judged` watches whose condition no longer holds resolved
    ///   (told if their team was told they fired);
    /// - the first message of a firing alert nobody silenced, and one reminder
    ///   `repeat_after` later while nobody acknowledged it.
    pub(super) async fn keep_alerts(
        &self,
        service: &ServiceName,
        judged: &[Watch],
        conditions: &[Condition],
        repeat_after: chrono::Duration,
        now: DateTime<Utc>,
    ) -> Result<Vec<(Alert, Told)>, StoreError> {
        on_pool!(self.pool, |pool| {
            for condition in conditions.iter().filter(|c| c.fires) {
                // However many replicas see it, the index keeps one open alert.
                sqlx::query(
                    "INSERT INTO alert (service, watch, subject, summary, link, ask_link, fired_at, last_seen_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $7)
                     ON CONFLICT (service, watch, subject) WHERE resolved_at IS NULL
                     DO UPDATE SET summary = excluded.summary, link = excluded.link,
                                   ask_link = excluded.ask_link, last_seen_at = excluded.last_seen_at",
                )
                .bind(service)
                .bind(condition.watch.as_str())
                .bind(&condition.subject)
                .bind(&condition.summary)
                .bind(&condition.link)
                .bind(&condition.ask_link)
                .bind(now)
                .execute(pool)
                .await?;
            }
        });
        let mut due = Vec::new();
        for open in self.open_alerts(service, now).await? {
            let mut alert = open.alert;
            let holds = conditions
                .iter()
                .any(|c| c.watch == alert.watch && c.subject == alert.subject);
            let (told, claim) = match (open.notified_at, open.reminded_at) {
                _ if !holds && judged.contains(&alert.watch) => (
                    Told::Resolved,
                    "UPDATE alert SET resolved_at = $2 WHERE id = $1 AND resolved_at IS NULL",
                ),
                _ if alert.state != AlertState::Firing => continue,
                (None, _) => (
                    Told::Fired,
                    "UPDATE alert SET notified_at = $2 WHERE id = $1 AND notified_at IS NULL",
                ),
                (Some(notified), None) if now - notified >= repeat_after => (
                    Told::Reminder,
                    "UPDATE alert SET reminded_at = $2 WHERE id = $1 AND reminded_at IS NULL",
                ),
                _ => continue,
            };
            let won = on_pool!(self.pool, |pool| {
                sqlx::query(claim)
                    .bind(alert.id)
                    .bind(now)
                    .execute(pool)
                    .await?
                    .rows_affected()
            });
            if told == Told::Resolved {
                alert.state = AlertState::Resolved;
                alert.resolved_at = Some(now);
            }
            // A resolution is told only to a team that was told the alert fired.
            if won == 1 && (told != Told::Resolved || open.notified_at.is_some()) {
                due.push((alert, told));
            }
        }
        Ok(due)
    }

    /// Every open alert, those resolved in the last 7 days, and the silences in force.
    pub async fn alert_board(&self, now: DateTime<Utc>) -> Result<AlertBoard, StoreError> {
        let silences = self.silences_in_force(now).await?;
        let rows: Vec<AlertRow> = on_pool!(self.pool, |pool| {
            sqlx::query_as(&format!(
                "SELECT {ALERT_COLUMNS} FROM alert
                 WHERE resolved_at IS NULL OR resolved_at > $1
                 ORDER BY resolved_at IS NOT NULL, COALESCE(resolved_at, fired_at) DESC, id DESC"
            ))
            .bind(now - RESOLVED_SHOWN)
            .fetch_all(pool)
            .await?
        });
        let alerts = rows
            .into_iter()
            .map(|row| stored(row, &silences, now).map(|s| s.alert))
            .collect::<Result<_, _>>()?;
        Ok(AlertBoard { alerts, silences })
    }

    /// Records that `by` is on alert `id`: no reminder is sent for it from now on.
    pub(crate) async fn acknowledge_alert(
        &self,
        id: i64,
        by: &str,
        note: &str,
        now: DateTime<Utc>,
    ) -> Result<Alert, AcknowledgeError> {
        let done = on_pool!(self.pool, |pool| {
            sqlx::query(
                "UPDATE alert SET acknowledged_by = $2, acknowledged_at = $3, acknowledged_note = $4
                 WHERE id = $1 AND resolved_at IS NULL AND acknowledged_at IS NULL",
            )
            .bind(id)
            .bind(by)
            .bind(now)
            .bind(note)
            .execute(pool)
            .await
            .map_err(StoreError::from)?
            .rows_affected()
        });
        let silences = self.silences_in_force(now).await?;
        let row: Option<AlertRow> = on_pool!(self.pool, |pool| {
            sqlx::query_as(&format!("SELECT {ALERT_COLUMNS} FROM alert WHERE id = $1"))
                .bind(id)
                .fetch_optional(pool)
                .await
                .map_err(StoreError::from)?
        });
        let alert = stored(row.ok_or(AcknowledgeError::Unknown(id))?, &silences, now)?.alert;
        match (&alert.acknowledged, alert.resolved_at) {
            _ if done == 1 => Ok(alert),
            (Some(ack), _) => Err(AcknowledgeError::Already {
                id,
                by: ack.by.clone(),
            }),
            (None, _) => Err(AcknowledgeError::Resolved(id)),
        }
    }

    /// Silences alerts of `service` (every service: `None`) and `watch` (every watch:
    /// `None`) until `until`.
    pub async fn silence_alerts(
        &self,
        service: Option<&ServiceName>,
        watch: Option<Watch>,
        until: DateTime<Utc>,
        reason: &str,
        by: &str,
        now: DateTime<Utc>,
    ) -> Result<Silence, StoreError> {
        let row: SilenceRow = on_pool!(self.pool, |pool| {
            sqlx::query_as(
                "INSERT INTO alert_silence (service, watch, until, reason, created_by, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6)
                 RETURNING id, service, watch, until, reason, created_by, created_at",
            )
            .bind(service.map(ServiceName::as_str))
            .bind(watch.map(Watch::as_str))
            .bind(until)
            .bind(reason)
            .bind(by)
            .bind(now)
            .fetch_one(pool)
            .await?
        });
        silence(row)
    }
}

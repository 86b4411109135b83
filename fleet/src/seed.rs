//! Sagas in bulk, in a handful of set-based statements: a series of random draws
//! (PostgreSQL `generate_series`, an SQLite recursive CTE) placed into statuses, types,
//! steps and times in SQL, with payments' transfer events derived from them.

use crate::FleetError;
use crate::catalog::{Kind, STUCK_AFTER, ServiceSpec};
use crate::db::{Dialect, Tx};
use crate::payouts::quote;

/// How a batch of seeded sagas divides into statuses, and how far back they go.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Mix {
    pub(crate) failed: f64,
    pub(crate) stuck: f64,
    pub(crate) running: f64,
    /// Sagas are created evenly over this many seconds up to now.
    pub(crate) span_secs: f64,
    /// Every failure has this error, at the step of the service's first error, as in an
    /// outage; else each has one of the service's five.
    pub(crate) outage_error: Option<&'static str>,
}

/// What `fleet seed` makes: most sagas completed, 2.5% failed across the service's five
/// errors, 1% stuck, 0.5% running; created over the last 30 days.
pub(crate) const REALISTIC: Mix = Mix {
    failed: 0.025,
    stuck: 0.01,
    running: 0.005,
    span_secs: 30.0 * 86_400.0,
    outage_error: None,
};

/// What `fleet seed --outage` makes: an outage in the last hour failed every saga with
/// the same error, the case a bulk retry is for.
pub(crate) const OUTAGE: Mix = Mix {
    failed: 1.0,
    stuck: 0.0,
    running: 0.0,
    span_secs: 3600.0,
    outage_error: Some("upstream provider outage: connection refused"),
};

/// The demo's first-start history: more trouble than real life, so the dashboard has some.
pub(crate) const DEMO_HISTORY: Mix = Mix {
    failed: 0.06,
    stuck: 0.03,
    running: 0.02,
    span_secs: 2.0 * 86_400.0,
    outage_error: None,
};

/// Rows a seed wrote.
pub(crate) struct Seeded {
    pub(crate) sagas: u64,
    pub(crate) transfer_events: u64,
}

/// Adds `count` sagas of `spec`'s types (and, for payments, their transfers' events).
pub(crate) async fn sagas(
    tx: &mut Tx,
    backend: Dialect,
    spec: &ServiceSpec,
    count: u64,
    mix: Mix,
) -> Result<Seeded, FleetError> {
    let rnd = backend.random();
    let stuck_after = STUCK_AFTER.as_secs_f64();
    // The count is inlined: CREATE TABLE AS takes no parameters on PostgreSQL.
    tx.execute(
        &format!(
            "CREATE TEMP TABLE seed_draw AS SELECT {uuid} AS saga_id, {rnd} AS pick, {rnd} AS r1, \
             {rnd} AS r2, {rnd} AS r3, {rnd} AS r4, {rnd} AS r5, {rnd} AS r6 FROM {series}",
            uuid = backend.uuid(),
            series = backend.series(&count.to_string()),
        ),
        &[],
    )
    .await?;

    let types = spec
        .saga_types
        .iter()
        .enumerate()
        .map(|(i, t)| format!("({i}, {}, {})", quote(t.name), t.steps.len()))
        .collect::<Vec<_>>()
        .join(", ");
    let steps = spec
        .saga_types
        .iter()
        .enumerate()
        .flat_map(|(i, t)| {
            t.steps
                .iter()
                .enumerate()
                .map(move |(j, s)| format!("({i}, {j}, {})", quote(s)))
        })
        .collect::<Vec<_>>()
        .join(", ");
    let faults = spec
        .faults
        .iter()
        .enumerate()
        .map(|(i, f)| format!("({i}, {}, {}, {})", f.saga_type, f.step, quote(f.message)))
        .collect::<Vec<_>>()
        .join(", ");
    let Mix {
        failed,
        stuck,
        running,
        span_secs: span,
        outage_error,
    } = mix;
    let (to_stuck, to_running) = (failed + stuck, failed + stuck + running);
    let (fault_pick, message) = match outage_error {
        Some(error) => ("0".to_owned(), quote(error)),
        None => (
            backend.floor(&format!("d.r1 * {}", spec.faults.len())),
            "fa.message".to_owned(),
        ),
    };
    let type_pick = backend.floor(&format!("d.r2 * {}", spec.saga_types.len()));
    let step_pick = backend.floor("f.r2 * ty.steps");
    // Seconds since creation, then since the last update, by status.
    let created = format!(
        "CASE f.state WHEN 'running' THEN f.r3 * {running_window} \
         WHEN 'stuck' THEN {stuck_floor} + f.r3 * ({span} - {stuck_floor}) \
         ELSE f.r3 * {span} END",
        running_window = stuck_after * 0.9,
        stuck_floor = stuck_after * 1.5,
    );
    let updated = format!(
        "CASE p.state WHEN 'running' THEN p.created * 0.5 * (1 - p.r4) \
         WHEN 'stuck' THEN p.created - p.r4 * (p.created - {stuck_min}) \
         ELSE CASE WHEN p.created > 300 THEN p.created - p.r4 * 300 ELSE p.created * (1 - p.r4) END \
         END",
        stuck_min = stuck_after * 1.2,
    );
    tx.execute(
        &format!(
            "CREATE TEMP TABLE seed_saga AS
             WITH ty(type_ix, name, steps) AS (VALUES {types}),
                  st(type_ix, step_ix, name) AS (VALUES {steps}),
                  fa(fault_ix, type_ix, step_ix, message) AS (VALUES {faults}),
                  drawn AS (
                    SELECT d.*,
                           CASE WHEN d.pick < {failed} THEN 'failed'
                                WHEN d.pick < {to_stuck} THEN 'stuck'
                                WHEN d.pick < {to_running} THEN 'running'
                                ELSE 'completed' END AS state,
                           {type_pick} AS any_type,
                           {fault_pick} AS fault_ix
                    FROM seed_draw d),
                  faulted AS (
                    SELECT d.saga_id, d.state, d.r2, d.r3, d.r4, d.r5, d.r6,
                           COALESCE(fa.type_ix, d.any_type) AS type_ix,
                           fa.step_ix AS fault_step, {message} AS message
                    FROM drawn d LEFT JOIN fa ON d.state = 'failed' AND fa.fault_ix = d.fault_ix),
                  placed AS (
                    SELECT f.saga_id, f.state, f.message, f.r4, f.r5, f.r6, f.type_ix,
                           ty.name AS saga_type, ty.steps,
                           CASE f.state WHEN 'failed' THEN f.fault_step
                                        WHEN 'completed' THEN ty.steps - 1
                                        ELSE {step_pick} END AS step_ix,
                           {created} AS created
                    FROM faulted f JOIN ty ON ty.type_ix = f.type_ix)
             SELECT p.saga_id, p.state, p.message, p.saga_type, st.name AS step, p.r5, p.r6,
                    CASE p.state WHEN 'completed' THEN p.steps ELSE p.step_ix END AS done,
                    p.created, {updated} AS updated
             FROM placed p JOIN st ON st.type_ix = p.type_ix AND st.step_ix = p.step_ix"
        ),
        &[],
    )
    .await?;
    let sagas = tx
        .execute(
            &format!(
                "INSERT INTO saga (saga_id, saga_type, current_step, completed, error_message, \
                 fault, stalled, created_at, updated_at)
                 SELECT saga_id, saga_type, step, state = 'completed', message, message,
                        state = 'stuck', {}, {}
                 FROM seed_saga",
                backend.ago("created"),
                backend.ago("updated"),
            ),
            &[],
        )
        .await?;
    let mut transfer_events = 0;
    if spec.kind == Kind::Payments {
        transfer_events += tx
            .execute(
                &format!(
                    "WITH ev(k, kind) AS (VALUES (0, 'initiated'), (1, 'funds_reserved'), \
                       (2, 'ledger_posted'), (3, 'settled'))
                     INSERT INTO transfer_event (transfer_id, seq, kind, amount, currency, \
                       from_account, to_account, reference, created_at)
                     SELECT s.saga_id, ev.k + 1, ev.kind,
                            CASE WHEN ev.kind = 'ledger_posted' THEN NULL ELSE {amount} END,
                            CASE WHEN ev.kind = 'ledger_posted' THEN NULL
                                 WHEN s.r6 < 0.6 THEN 'EUR' WHEN s.r6 < 0.9 THEN 'USD'
                                 ELSE 'GBP' END,
                            CASE WHEN ev.k = 0 THEN 'acct-' || CAST({from} AS TEXT) END,
                            CASE WHEN ev.k = 0 THEN 'acct-' || CAST({to} AS TEXT) END,
                            CASE WHEN ev.k = 0 THEN 'TRF-' || substr(s.saga_id, 1, 8) END,
                            CASE WHEN ev.k = 0 THEN {created} ELSE {updated} END
                     FROM seed_saga s JOIN ev ON ev.k <= s.done",
                    amount = backend.money("5 + s.r5 * 2495"),
                    from = backend.floor("10000 + s.r6 * 89999"),
                    to = backend.floor("10000 + s.r5 * 89999"),
                    created = backend.ago("s.created"),
                    updated = backend.ago("s.updated"),
                ),
                &[],
            )
            .await?;
        transfer_events += tx
            .execute(
                &format!(
                    "INSERT INTO transfer_event (transfer_id, seq, kind, detail, created_at)
                     SELECT saga_id, done + 2, 'failed', message, {}
                     FROM seed_saga WHERE state = 'failed'",
                    backend.ago("updated")
                ),
                &[],
            )
            .await?;
    }
    tx.execute("DROP TABLE seed_draw", &[]).await?;
    tx.execute("DROP TABLE seed_saga", &[]).await?;
    Ok(Seeded {
        sagas,
        transfer_events,
    })
}

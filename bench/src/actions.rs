//! The action figures: the endpoint's own rate for the same protocol (the dry run of every
//! entity, then the real calls, in chunks of 1,000 IDs, 4 in flight) against Runboard's
//! action on an error group of the same size (approval to succeeded, its re-check
//! included), the preview's time, the action page's load time and Runboard's peak RSS, and
//! where the processors' time went in the endpoint's dry run and in the preview.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use runboard_fleet::ServiceInfo;
use serde_json::{Value, json};
use sqlx::Connection;
use sqlx::postgres::PgConnection;

use crate::cpu::{CpuMeter, CpuUse};
use crate::setup::{Setup, say};

/// The reference's call: what a well-written script sends.
const REFERENCE_CHUNK: usize = 1_000;
const REFERENCE_IN_FLIGHT: usize = 4;
/// Page views of the action page measured, after one to warm up.
const PAGE_VIEWS: usize = 5;

/// What the action figures came to.
pub struct ActionRun {
    pub entities: u64,
    /// The endpoint called directly: dry run pass and real pass.
    pub endpoint_seconds: f64,
    /// Runboard's action from its approval to succeeded.
    pub runboard_seconds: f64,
    pub runboard_entities: u64,
    pub preview_seconds: f64,
    /// The action page's path, and its load time: median of [`PAGE_VIEWS`] views.
    pub page: String,
    pub page_ms: f64,
    pub peak_rss_mb: f64,
    /// Processor time during the endpoint's dry run called directly, and during the preview.
    pub dry_run_cpu: CpuUse,
    pub preview_cpu: CpuUse,
}

impl ActionRun {
    pub fn endpoint_rate(&self) -> f64 {
        self.entities as f64 / self.endpoint_seconds
    }

    pub fn runboard_rate(&self) -> f64 {
        self.runboard_entities as f64 / self.runboard_seconds
    }
}

/// Seeds an outage of twice `entities` failed onboarding sagas with one error, retries half
/// of them by calling the endpoint directly, then the rest as one Runboard action from the
/// error group. The fleet's fix is deployed, so a retried saga completes and leaves the
/// group, and both sides do the same work per saga.
pub async fn measure(setup: &Setup, entities: u64) -> Result<ActionRun, String> {
    let onboarding = setup
        .fleet
        .services()
        .iter()
        .find(|s| s.name == "onboarding")
        .ok_or("the demo fleet has no onboarding service")?
        .clone();
    let seeded = runboard_fleet::seed_outage(&onboarding.database_url, "onboarding", 2 * entities)
        .await
        .map_err(|e| format!("seeding the outage: {e}"))?;
    say(&format!(
        "seeded an outage of {} failed onboarding sagas in {:.1} s",
        seeded.sagas,
        seeded.elapsed.as_secs_f64()
    ));
    setup.fleet.set_fix_deployed(true);
    let (error, reference_ids) = outage(&onboarding, entities).await?;

    say(&format!(
        "the endpoint called directly: {entities} sagas, dry run then for real, {REFERENCE_CHUNK} IDs a call, {REFERENCE_IN_FLIGHT} in flight"
    ));
    settle(&onboarding).await?;
    let meter = CpuMeter::start(setup.watched(&onboarding.database_url)).await?;
    let started = Instant::now();
    call_directly(&onboarding, &reference_ids, true).await?;
    let dry_run = started.elapsed().as_secs_f64();
    let dry_run_cpu = meter.stop().await?;
    call_directly(&onboarding, &reference_ids, false).await?;
    let endpoint_seconds = started.elapsed().as_secs_f64();
    say(&format!(
        "the endpoint took {dry_run:.1} s for the dry run and {:.1} s for real",
        endpoint_seconds - dry_run
    ));

    settle(&onboarding).await?;
    say("Runboard's action on the rest of the error group: preview, approval, execution");
    let operator = setup
        .client_for("bench:operator", runboard_model::Role::Operator)
        .await?;
    let approver = setup
        .client_for("bench:approver", runboard_model::Role::Approver)
        .await?;
    let meter = CpuMeter::start(setup.watched(&onboarding.database_url)).await?;
    let asked = Instant::now();
    let action = send(operator.post(setup.url("/api/v1/actions")).json(&json!({
        "service": "onboarding", "mutation": "retrySagas", "arguments": {},
        "selection": { "error_group": error },
    })))
    .await?;
    let preview_seconds = asked.elapsed().as_secs_f64();
    let preview_cpu = meter.stop().await?;
    say(&format!("the preview took {preview_seconds:.1} s"));
    let id = action["id"]
        .as_str()
        .ok_or("the action has no id")?
        .to_owned();
    let runboard_entities = action["preview"]["entities"].as_u64().unwrap_or(0);
    send(
        operator
            .post(setup.url(&format!("/api/v1/actions/{id}/submit")))
            .json(&json!({ "reason": "scripts/bench" })),
    )
    .await?;
    let approved = Instant::now();
    send(
        approver
            .post(setup.url(&format!("/api/v1/actions/{id}/approve")))
            .json(&json!({ "digest": action["digest"] })),
    )
    .await?;
    let ended = loop {
        let detail =
            send(operator.get(setup.url(&format!("/api/v1/actions/{id}?limit=1")))).await?;
        let state = detail["action"]["state"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        if !matches!(state.as_str(), "approved" | "executing") {
            break detail;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let runboard_seconds = approved.elapsed().as_secs_f64();
    if ended["action"]["state"] != "succeeded" {
        return Err(format!(
            "the action ended {} ({}): {}",
            ended["action"]["state"], ended["action"]["state_detail"], ended["action"]["progress"]
        ));
    }

    let page = format!("/actions/{id}");
    let mut views = Vec::with_capacity(PAGE_VIEWS);
    for view in 0..=PAGE_VIEWS {
        let started = Instant::now();
        let response = setup
            .client
            .get(setup.url(&page))
            .send()
            .await
            .map_err(|e| format!("GET {page}: {e}"))?;
        let status = response.status();
        response
            .bytes()
            .await
            .map_err(|e| format!("GET {page}: {e}"))?;
        if !status.is_success() {
            return Err(format!("GET {page}: {status}"));
        }
        if view > 0 {
            views.push(started.elapsed().as_secs_f64() * 1000.0);
        }
    }
    views.sort_by(f64::total_cmp);
    Ok(ActionRun {
        entities,
        endpoint_seconds,
        runboard_seconds,
        runboard_entities,
        preview_seconds,
        page,
        page_ms: views[views.len() / 2],
        peak_rss_mb: setup.runboard_peak_rss_mb()?,
        dry_run_cpu,
        preview_cpu,
    })
}

/// Vacuums and analyzes the service's database and writes every dirty page out, so that each
/// side starts from the same state: without it, whichever side runs first also pays for
/// the cleanup of the seeding (autovacuum, a checkpoint), and the other for its own.
async fn settle(onboarding: &ServiceInfo) -> Result<(), String> {
    let mut db = PgConnection::connect(&onboarding.database_url)
        .await
        .map_err(|e| format!("onboarding's database: {e}"))?;
    for statement in ["VACUUM ANALYZE", "CHECKPOINT"] {
        sqlx::query(statement)
            .execute(&mut db)
            .await
            .map_err(|e| format!("{statement} on onboarding's database: {e}"))?;
    }
    Ok(())
}

/// The outage's error, and `entities` of its sagas for the reference to retry: the oldest,
/// in the order Runboard reads an error group (oldest first), so that both sides call the
/// service with the same kind of chunks. Ordered by id instead, a chunk's sagas lie all over
/// the table, and each call writes about a thousand pages where Runboard's write a few:
/// that alone made Runboard look 1.2 times faster than the service.
async fn outage(onboarding: &ServiceInfo, entities: u64) -> Result<(String, Vec<String>), String> {
    let mut db = PgConnection::connect(&onboarding.database_url)
        .await
        .map_err(|e| format!("onboarding's database: {e}"))?;
    let (error,): (String,) = sqlx::query_as(
        "SELECT error_message FROM saga WHERE error_message IS NOT NULL
         GROUP BY error_message ORDER BY COUNT(*) DESC LIMIT 1",
    )
    .fetch_one(&mut db)
    .await
    .map_err(|e| format!("the outage's error: {e}"))?;
    let ids: Vec<(String,)> = sqlx::query_as(
        "SELECT saga_id FROM saga WHERE error_message = $1 AND NOT completed \
         ORDER BY created_at, saga_id LIMIT $2",
    )
    .bind(&error)
    .bind(i64::try_from(entities).unwrap_or(i64::MAX))
    .fetch_all(&mut db)
    .await
    .map_err(|e| format!("the outage's sagas: {e}"))?;
    Ok((error, ids.into_iter().map(|(id,)| id).collect()))
}

/// `retrySagas` on `ids`, called directly as a script would.
async fn call_directly(
    onboarding: &ServiceInfo,
    ids: &[String],
    dry_run: bool,
) -> Result<(), String> {
    let client = reqwest::Client::new();
    let document = "mutation($ids: [ID!]!, $dryRun: Boolean!) { retrySagas(ids: $ids, dryRun: $dryRun) { dryRun effects { entityId description amount currency } } }";
    let calls = ids.chunks(REFERENCE_CHUNK).enumerate().map(|(i, chunk)| {
        let client = client.clone();
        async move {
            let mut request = client.post(&onboarding.graphql_url).json(
                &json!({ "query": document, "variables": { "ids": chunk, "dryRun": dry_run } }),
            );
            if !dry_run {
                request = request.header("idempotency-key", format!("bench-reference:{i}"));
            }
            let answer = send(request).await?;
            match answer.get("errors") {
                Some(errors) => Err(format!("the endpoint refused a call: {errors}")),
                None => Ok(()),
            }
        }
    });
    let answers: Vec<Result<(), String>> = futures_util::stream::iter(calls)
        .buffer_unordered(REFERENCE_IN_FLIGHT)
        .collect()
        .await;
    answers.into_iter().collect()
}

async fn send(request: reqwest::RequestBuilder) -> Result<Value, String> {
    let response = request.send().await.map_err(|e| e.to_string())?;
    let status = response.status();
    let text = response
        .text()
        .await
        .map_err(|e| format!("{status}: {e}"))?;
    match serde_json::from_str(&text) {
        Ok(body) if status.is_success() => Ok(body),
        _ => Err(format!(
            "{status}: {}",
            text.chars().take(300).collect::<String>()
        )),
    }
}

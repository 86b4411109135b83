//! The dry run again before a start, and a new approval when it says something else.

use std::collections::HashMap;

use runboard_model::{Action, ActionState, DryRun, Effect, Money};
use serde_json::json;

use super::{Lease, call_headers, call_of, chunk_members, engine_audit, pause, pending_chunks};
use crate::App;
use crate::actions::{
    ActionError, Digester, DryRunCall, DryRunner, EffectTally, Found, NewPreview, Transition,
    held_money, in_chunk, resolve_entities, sorted,
};
use crate::db::on_pool;

/// Chunks the recheck reads and dry-runs at a time, so that memory stays bounded.
const RECHECK_PAGE: usize = 64;

/// The dry run again, right before the first call of this start (and of each runbook
/// step), for the current step's chunks never sent; true when it says what the approvers saw. Chunks sent before (by a replica that
/// died or froze) are left out: they may be applied already, their dry run would differ for
/// that alone, and they are only ever resent with their idempotency key.
pub(super) async fn recheck(
    app: &App,
    lease: &Lease,
    action: &Action,
) -> Result<bool, ActionError> {
    let offered = match action.preview.steps.get(action.current_step as usize) {
        Some(step) => &step.dry_run,
        None => &action.preview.dry_run,
    };
    if matches!(offered, DryRun::NotOffered) {
        return Ok(true);
    }
    let connector = app.action_connector(&action.service)?;
    let mission_control = connector.mission_control();
    let headers = call_headers(action, lease);
    let (mut after, mut entities, mut same) = (-1, 0_usize, true);
    // The chunks never sent, and the dry run as it is now of those whose effects differ from
    // the approved ones: the rest stay as stored, so a million entities' effects are not
    // held to find that nothing changed.
    let (mut unsent, mut replanned) = (Vec::new(), Vec::<(i32, String)>::new());
    let mut tally = EffectTally::default();
    loop {
        if !lease.holds() {
            return Ok(false);
        }
        let chunks = pending_chunks(app, action, after, RECHECK_PAGE, true).await?;
        let Some(last) = chunks.last() else { break };
        after = last.number;
        let mut document = "";
        let mut calls = Vec::with_capacity(chunks.len());
        for chunk in &chunks {
            let (sends, _, variables) = call_of(action, chunk, true)?;
            document = sends;
            calls.push(DryRunCall {
                entities: chunk.members.len(),
                variables,
            });
        }
        let answers = DryRunner {
            mission_control,
            document,
            concurrency: action.preview.concurrency,
            headers: &headers,
            limit: app.config.actions.dry_run_time_limit,
        }
        .each(calls)
        .await;
        let answers = match answers {
            Ok(answers) => answers,
            Err(e) => {
                pause(
                    app,
                    lease,
                    action,
                    &format!("the dry run before executing failed: {e}; resume to run it again"),
                )
                .await?;
                return Ok(false);
            }
        };
        for (chunk, effects) in chunks.iter().zip(answers) {
            entities += chunk.members.len();
            let approved: Option<Vec<Effect>> = chunk
                .planned
                .as_deref()
                .and_then(|p| serde_json::from_str(p).ok());
            let effects = sorted(effects);
            for effect in &effects {
                tally.add(effect)?;
            }
            unsent.push(chunk.number);
            // A chunk stored without its dry run (an action from before chunks) differs.
            if approved.map(sorted).as_ref() != Some(&effects) {
                same = false;
                replanned.push((
                    chunk.number,
                    serde_json::to_string(&effects).expect("effects serialize"),
                ));
            }
        }
    }
    if entities == 0 {
        return Ok(true);
    }
    app.store
        .append_audit(&engine_audit(
            action,
            "action.rechecked",
            json!({ "epoch": lease.epoch, "entities": entities, "same_as_approved": same }),
        ))
        .await?;
    if !same {
        let rechecked = Rechecked {
            unsent,
            replanned,
            tally,
            entities,
        };
        ask_again(app, lease, action, rechecked).await?;
    }
    Ok(same)
}

/// What the dry run right before a start found, for a new preview.
struct Rechecked {
    /// The chunks never sent, in order.
    unsent: Vec<i32>,
    /// The new effects of the unsent chunks whose dry run now differs.
    replanned: Vec<(i32, String)>,
    /// Every unsent chunk's effects as the dry run gives them now.
    tally: EffectTally,
    /// The entities of the unsent chunks.
    entities: usize,
}

/// The dry run now says something else than the approved preview: store a new preview
/// (the unsent entities as found now, the new effects of the `replanned` chunks, the money
/// still to move), recompute the approvals it needs, void the approvals given, and ask for
/// approval again, saying what changed. All of it in the transition's one transaction, so
/// no replica can ever send on a dry run nobody approved.
async fn ask_again(
    app: &App,
    lease: &Lease,
    action: &Action,
    rechecked: Rechecked,
) -> Result<(), ActionError> {
    let Rechecked {
        unsent: unsent_chunks,
        replanned,
        tally,
        entities: remaining,
    } = rechecked;
    let replanned = replanned.as_slice();
    let connector = app.action_connector(&action.service)?;
    let planned: HashMap<i32, &str> = replanned.iter().map(|(c, p)| (*c, p.as_str())).collect();
    let mut unsent = Vec::with_capacity(remaining);
    for chunk in unsent_chunks {
        unsent.extend(chunk_members(app, action, chunk).await?);
    }
    let found = if action.preview.entity_argument.is_some() || action.is_runbook() {
        match resolve_entities(&connector, &unsent).await {
            Ok(found) => found,
            Err(e) => {
                let reason = format!(
                    "the dry run before executing differs from the approved preview, and the entities could not be read again for a new one: {e}; resume to try again"
                );
                return pause(app, lease, action, &reason).await;
            }
        }
    } else {
        Vec::new()
    };
    let found_now: HashMap<&str, &Found> = found.iter().map(|f| (f.id.as_str(), f)).collect();
    let mut preview = action.preview.clone();
    let needed = if action.is_runbook() {
        renew_steps(&mut preview, action.current_step as usize, tally);
        app.approvals_needed_for_runbook(&connector, &preview)
    } else {
        (preview.dry_run, preview.money) = tally.finish();
        app.approvals_needed(&connector, &action.mutation, &preview.money)
    };
    let new_digest = stored_digest(app, action, &preview, &planned, &found_now).await?;
    let all = action.preview.entities;
    let scope = if remaining as u64 == all {
        String::new()
    } else {
        format!(" The new preview's money covers the {remaining} of {all} entities not yet sent.")
    };
    let reason = format!(
        "The dry run right before executing differs from the approved preview: the entities changed since. \
         Money moved was {}, now {}; approvals needed were {}, now {needed}.{scope} Read the new preview and approve again.",
        runboard_model::money_list(&action.preview.money),
        runboard_model::money_list(&preview.money),
        action.approvals_needed,
    );
    let preview_json = serde_json::to_string(&preview).expect("a preview serializes");
    let (_, expires_at) = app.preview_times();
    let audit = engine_audit(
        action,
        "action.preview_changed",
        json!({
            "approved_digest": action.digest, "new_digest": new_digest,
            "money_before": action.preview.money, "money_now": preview.money,
            "approvals_needed_before": action.approvals_needed, "approvals_needed_now": needed,
            "remaining": remaining,
        }),
    );
    let mut again = Transition::new(action, ActionState::AwaitingApproval, audit);
    again.from = ActionState::Executing;
    again.detail = Some(&reason);
    again.lease = Some(lease.fence());
    again.new_preview = Some(NewPreview {
        json: &preview_json,
        digest: &new_digest,
        approvals_needed: needed,
        expires_at,
        planned: replanned,
        found: &found,
    });
    app.transition(again).await?;
    Ok(())
}

/// A runbook's preview with the current step's dry run as it is now, and its summary over
/// what is left to send: this step's replanned calls and every later step as approved.
fn renew_steps(preview: &mut runboard_model::Preview, current: usize, tally: EffectTally) {
    (preview.steps[current].dry_run, preview.steps[current].money) = tally.finish();
    let (mut effects, mut money) = (0, Vec::new());
    for step in &preview.steps[current..] {
        if let DryRun::Done { effects: n, .. } = &step.dry_run {
            effects += n;
        }
        for m in &step.money {
            runboard_model::add_to_totals(&mut money, m.amount, &m.currency);
        }
    }
    money.sort_by(|a: &Money, b: &Money| a.currency.cmp(&b.currency));
    preview.money = money;
    preview.dry_run = DryRun::Done {
        effects,
        groups: Vec::new(),
    };
}

/// The digest of the action's preview as stored, with `planned` and `found` in place of
/// what the store has for those chunks and entities: every chunk that carries entities
/// (not those split), in order, read a page at a time; a runbook's call with its variables.
async fn stored_digest(
    app: &App,
    action: &Action,
    preview: &runboard_model::Preview,
    planned: &HashMap<i32, &str>,
    found: &HashMap<&str, &Found>,
) -> Result<runboard_model::Digest, ActionError> {
    #[derive(sqlx::FromRow)]
    struct Member {
        entity_id: String,
        found: Option<String>,
        held_amount: Option<String>,
        held_currency: Option<String>,
    }
    let mut digester = Digester::new();
    let mut after = -1;
    loop {
        type Row = (i32, Option<String>, Option<String>, Option<String>);
        let chunks: Vec<Row> = on_pool!(app.store.pool, |pool| {
            sqlx::query_as(
                "SELECT chunk, planned, entity_id, variables FROM action_chunk
                 WHERE action_id = $1 AND state <> 'split' AND chunk > $2 ORDER BY chunk LIMIT 64",
            )
            .bind(&action.id)
            .bind(after)
            .fetch_all(pool)
            .await?
        });
        let Some((last, ..)) = chunks.last() else {
            return Ok(digester.finish(preview));
        };
        after = *last;
        for (chunk, stored, entity, variables) in chunks {
            let members: Vec<Member> = match &entity {
                Some(entity) => on_pool!(app.store.pool, |pool| {
                    sqlx::query_as(
                        "SELECT entity_id, found, held_amount, held_currency FROM action_entity
                         WHERE action_id = $1 AND entity_id = $2",
                    )
                    .bind(&action.id)
                    .bind(entity)
                    .fetch_all(pool)
                    .await?
                }),
                None => on_pool!(app.store.pool, |pool| {
                    sqlx::query_as(&format!(
                        "SELECT entity_id, found, held_amount, held_currency FROM action_entity
                         WHERE {} ORDER BY position",
                        in_chunk("$1", "$2")
                    ))
                    .bind(&action.id)
                    .bind(chunk)
                    .fetch_all(pool)
                    .await?
                }),
            };
            let members: Vec<Found> = members
                .into_iter()
                .map(|m| match found.get(m.entity_id.as_str()) {
                    Some(now) => (*now).clone(),
                    None => Found {
                        held: held_money(m.held_amount, m.held_currency),
                        id: m.entity_id,
                        state: m.found,
                    },
                })
                .collect();
            let planned = planned.get(&chunk).copied().or(stored.as_deref());
            digester.chunk(u32::try_from(chunk).unwrap_or(0), &members, planned);
            if let Some(variables) = &variables {
                digester.variables(variables);
            }
        }
    }
}

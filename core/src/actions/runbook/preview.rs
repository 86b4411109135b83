//! A runbook's preview: every step's call for every entity, filled in from that entity's own
//! data and dry-run by the service, written in one transaction under one digest.
//!
//! Each entity gets a call of its own per step (one member a chunk), so that a step failing
//! for one entity stops only that entity's later steps, and a later step can never name an
//! entity whose earlier step did not succeed. Chunk numbers run on across the steps: the
//! call of step `s` for the entity at position `p` of `n` is chunk `s·n + p`.

use std::time::Instant;

use runboard_model::{
    Action, ActionId, ActionSpec, DryRun, Effect, Money, Preview, RunbookStep, StepPreview, User,
    add_to_totals,
};
use serde_json::{Map, Value, json};

use super::template::{Namespace, Placeholder, Template};
use super::values::entity_values;
use crate::App;
use crate::actions::preview::document;
use crate::actions::{
    ActionError, ActionRequest, Digester, DryRunCall, DryRunner, EffectTally, Found, NewAction,
    RequestKey, keep_first, resolve_entities,
};
use crate::audit::{Actor, NewAuditEntry};
use crate::connector::Connector;

/// Most entities one runbook fixes: each gets a call of its own per step, and the whole
/// dry run has to fit in the time a preview may take.
pub const MAX_RUNBOOK_ENTITIES: usize = 10_000;

/// Most calls one runbook makes, steps × entities: every call is built in memory before the
/// dry run, and the whole dry run has to fit in the time a preview may take.
pub const MAX_RUNBOOK_CALLS: usize = 100_000;

/// A step read and checked against its mutation.
pub(super) struct CheckedStep {
    title: String,
    spec: ActionSpec,
    template: Template,
    arguments: Value,
}

/// The chunk of the call of `step` for the entity at `position`, of `entities` in all.
fn step_chunk(entities: usize, step: usize, position: usize) -> Result<i32, ActionError> {
    step.checked_mul(entities)
        .and_then(|first| first.checked_add(position))
        .and_then(|chunk| i32::try_from(chunk).ok())
        .ok_or_else(|| too_many_calls(step + 1, entities))
}

/// A runbook of `steps` steps on `entities` entities makes more calls than one action may.
fn too_many_calls(steps: usize, entities: usize) -> ActionError {
    ActionError::BadArguments(format!(
        "the runbook makes a call per step and entity, {steps} steps × {entities} entities, more than the {MAX_RUNBOOK_CALLS} calls one runbook makes: fewer steps or entities, or several runbooks"
    ))
}

/// Every step's calls and their dry run, before they are written.
struct Plan<'a> {
    id: &'a ActionId,
    label: String,
    found: Vec<Found>,
    preview: Preview,
    /// Per step, per entity: the call's variables (its entity list filled, `dryRun` aside).
    variables: Vec<Vec<Value>>,
    /// Per step (when it offers a dry run), per entity: the dry run's effects.
    planned: Vec<Option<Vec<Vec<Effect>>>>,
}

impl App {
    /// A runbook's preview: reads every entity's values, fills in each step's call for each,
    /// dry-runs them step after step (each against the data as it is now, before any earlier
    /// step ran), and writes it all. Nothing is sent for real.
    pub(in crate::actions) async fn preview_runbook(
        &self,
        user: &User,
        request: &ActionRequest,
    ) -> Result<Action, ActionError> {
        let bad = |message: String| ActionError::BadArguments(message);
        let no_arguments = match &request.arguments {
            Value::Null => true,
            Value::Object(arguments) => arguments.is_empty(),
            _ => false,
        };
        if !request.mutation.is_empty() || !no_arguments {
            return Err(bad(
                "give either a mutation and its arguments, or a runbook's steps, not both".into(),
            ));
        }
        let started = Instant::now();
        let connector = self.action_connector(&request.service)?;
        // Every step is read and checked before anything is read from the service or sent.
        let steps = self.checked_steps(&connector, &request.steps).await?;
        let mut needed: Vec<&Placeholder> = steps
            .iter()
            .flat_map(|s| s.template.placeholders())
            .collect();
        needed.sort();
        needed.dedup();
        let wanted: Vec<&str> = needed
            .iter()
            .filter(|p| p.namespace == Namespace::Param)
            .map(|p| p.field.as_str())
            .collect();
        if let Some(stray) = request
            .params
            .keys()
            .find(|k| !wanted.contains(&k.as_str()))
        {
            return Err(bad(format!(
                "the runbook has no parameter {stray:?}; its steps use {}",
                if wanted.is_empty() {
                    "none".to_owned()
                } else {
                    wanted.join(", ")
                }
            )));
        }
        if let Some(blank) = wanted
            .iter()
            .find(|p| request.params.get(**p).is_none_or(|v| v.trim().is_empty()))
        {
            return Err(bad(format!(
                "the runbook's parameter {blank:?} is not given: its steps use it, so give it a value (params, or [params] in a file)"
            )));
        }
        let ids = self.runbook_entities(request).await?;
        // Every call is built in memory before the dry run: bounded before any is.
        if steps
            .len()
            .checked_mul(ids.len())
            .is_none_or(|calls| calls > MAX_RUNBOOK_CALLS)
        {
            return Err(too_many_calls(steps.len(), ids.len()));
        }
        let (values, found) = tokio::join!(
            entity_values(&connector, &ids, &needed, &request.params),
            resolve_entities(&connector, &ids),
        );
        let (values, found) = (values.map_err(ActionError::Read)?, found?);
        let mut variables = Vec::with_capacity(steps.len());
        for (n, step) in steps.iter().enumerate() {
            let mut calls = Vec::with_capacity(ids.len());
            for id in &ids {
                let own = values.get(id).cloned().unwrap_or_default();
                let mut call = step.template.render(&step.spec, &own).map_err(|e| {
                    bad(format!("step {} ({}), entity {id}: {e}", n + 1, step.title))
                })?;
                if let Some(list) = step.spec.entity_argument() {
                    call.insert(list.name.clone(), json!([id]));
                }
                calls.push(Value::Object(call));
            }
            variables.push(calls);
        }

        let id = ActionId::from(uuid::Uuid::new_v4().to_string());
        let headers = [
            ("x-runboard-action", id.to_string()),
            ("x-runboard-requester", user.subject.to_string()),
        ];
        let concurrency = self.config.actions.concurrency;
        let limit = self.config.actions.dry_run_time_limit;
        let mut planned = Vec::with_capacity(steps.len());
        let mut step_previews = Vec::with_capacity(steps.len());
        let (mut money, mut effects_in_all, mut any_dry_run) = (Vec::<Money>::new(), 0, false);
        for (step, calls) in steps.iter().zip(&variables) {
            let document = document(&step.spec);
            let (dry_run, step_money, effects) = if step.spec.dry_run {
                let dry = calls
                    .iter()
                    .map(|call| DryRunCall {
                        entities: 1,
                        variables: with_dry_run(call, true),
                    })
                    .collect();
                let effects = DryRunner {
                    mission_control: connector.mission_control(),
                    document: &document,
                    concurrency,
                    headers: &headers,
                    limit: limit.saturating_sub(started.elapsed()),
                }
                .each(dry)
                .await?;
                let mut tally = EffectTally::default();
                for effect in effects.iter().flatten() {
                    tally.add(effect)?;
                }
                let (dry_run, step_money) = tally.finish();
                any_dry_run = true;
                (dry_run, step_money, Some(effects))
            } else {
                (DryRun::NotOffered, Vec::new(), None)
            };
            if let DryRun::Done { effects, .. } = &dry_run {
                effects_in_all += effects;
            }
            for m in &step_money {
                add_to_totals(&mut money, m.amount, &m.currency);
            }
            planned.push(effects);
            step_previews.push(StepPreview {
                title: step.title.clone(),
                mutation: step.spec.mutation.clone(),
                document,
                arguments: step.arguments.clone(),
                dry_run,
                money: step_money,
            });
        }
        money.sort_by(|a, b| a.currency.cmp(&b.currency));
        let preview = Preview {
            endpoint: connector.mission_control().shown_url(),
            document: String::new(),
            variables: json!({}),
            entity_argument: None,
            entities: ids.len() as u64,
            chunk_size: 1,
            concurrency,
            dry_run: if any_dry_run {
                DryRun::Done {
                    effects: effects_in_all,
                    groups: Vec::new(),
                }
            } else {
                DryRun::NotOffered
            },
            money,
            steps: step_previews,
            params: request.params.clone(),
            // One entity a call: the engine sends the first alone all the same.
            canary: 0,
        };
        let label = request
            .name
            .as_deref()
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .map_or_else(
                || {
                    steps
                        .iter()
                        .map(|s| s.spec.mutation.as_str())
                        .collect::<Vec<_>>()
                        .join(" → ")
                },
                str::to_owned,
            );
        let plan = Plan {
            id: &id,
            label,
            found,
            preview,
            variables,
            planned,
        };
        self.write_runbook(user, request, &connector, plan).await?;
        tracing::info!(action = %id, service = %request.service, entities = ids.len(),
            steps = steps.len(), total_ms = started.elapsed().as_millis(), "runbook preview built");
        self.action(&id).await
    }

    /// A runbook's steps, each read and checked against its mutation in the service's catalog:
    /// a mistake is named (with the step) before anything is read from the service or sent.
    pub(super) async fn checked_steps(
        &self,
        connector: &Connector,
        steps: &[RunbookStep],
    ) -> Result<Vec<CheckedStep>, ActionError> {
        let bad = |message: String| ActionError::BadArguments(message);
        if steps.is_empty() {
            return Err(bad("a runbook needs at least one step".into()));
        }
        let most = self.config.actions.max_steps as usize;
        if steps.len() > most {
            return Err(bad(format!(
                "the runbook has {} steps; one runbook takes at most {most} (actions.max_steps): split it in several",
                steps.len()
            )));
        }
        let mut checked = Vec::with_capacity(steps.len());
        for (n, step) in steps.iter().enumerate() {
            let title = step.title.trim().to_owned();
            if title.is_empty() {
                return Err(bad(format!(
                    "step {} needs a title that says what it is for",
                    n + 1
                )));
            }
            let spec = self.action_spec(connector, step.mutation.trim()).await?;
            let arguments = match &step.arguments {
                Value::Object(arguments) => arguments.clone(),
                Value::Null => Map::new(),
                _ => {
                    return Err(bad(format!(
                        "step {} ({title}): arguments must be an object, one key per argument",
                        n + 1
                    )));
                }
            };
            let template = Template::parse(&arguments)
                .and_then(|template| template.check(&spec).map(|()| template))
                .map_err(|e| bad(format!("step {} ({title}): {e}", n + 1)))?;
            checked.push(CheckedStep {
                title,
                spec,
                template,
                arguments: Value::Object(arguments),
            });
        }
        Ok(checked)
    }

    /// The entities a runbook acts on: its selection, or its list of IDs, each once.
    async fn runbook_entities(&self, request: &ActionRequest) -> Result<Vec<String>, ActionError> {
        let bad = |message: String| ActionError::BadArguments(message);
        let named = match (&request.selection, request.entities.is_empty()) {
            (Some(_), false) => {
                return Err(bad("give either entities or a selection, not both".into()));
            }
            (Some(selection), true) => self.selected_entities(&request.service, selection).await?,
            (None, _) => request
                .entities
                .iter()
                .map(|id| id.trim().to_owned())
                .filter(|id| !id.is_empty())
                .collect(),
        };
        let mut ids = named;
        keep_first(&mut ids);
        if ids.is_empty() {
            return Err(bad(
                "a runbook needs entities: name them in entities, or give a selection".into(),
            ));
        }
        if ids.len() > MAX_RUNBOOK_ENTITIES {
            return Err(bad(format!(
                "the runbook names {} entities; one runbook fixes at most {MAX_RUNBOOK_ENTITIES}, each with a call of its own per step: split it in several",
                ids.len()
            )));
        }
        Ok(ids)
    }

    /// Writes a runbook's action, its entities and every step's calls, with the digest over
    /// all of it, in one transaction.
    async fn write_runbook(
        &self,
        user: &User,
        request: &ActionRequest,
        connector: &Connector,
        mut plan: Plan<'_>,
    ) -> Result<(), ActionError> {
        let Plan { id, .. } = plan;
        let found = std::mem::take(&mut plan.found);
        let (now, expires_at) = self.preview_times();
        let entities = found.len();
        // The calls in chunk order, each with what the digest and the store keep of it.
        let mut calls = Vec::with_capacity(entities * plan.variables.len());
        let mut digester = Digester::new();
        for (step, variables) in plan.variables.iter().enumerate() {
            for (position, member) in found.iter().enumerate() {
                let chunk = step_chunk(entities, step, position)?;
                let planned = plan.planned[step].as_ref().map(|effects| {
                    serde_json::to_string(&effects[position]).expect("effects serialize")
                });
                let variables = variables[position].to_string();
                digester.chunk(
                    u32::try_from(chunk).unwrap_or(0),
                    std::slice::from_ref(member),
                    planned.as_deref(),
                );
                digester.variables(&variables);
                calls.push((step, chunk, member.id.as_str(), planned, variables));
            }
        }
        let approvals_needed = self.approvals_needed_for_runbook(connector, &plan.preview);
        let digest = digester.finish(&plan.preview);
        let preview_json = serde_json::to_string(&plan.preview).expect("a preview serializes");
        let reason = request
            .reason
            .as_deref()
            .map(str::trim)
            .filter(|r| !r.is_empty());
        let audit = NewAuditEntry {
            actor: Actor::Person(&user.subject),
            action_id: Some(id),
            kind: "action.previewed",
            detail: json!({
                "service": request.service,
                "runbook": plan.label,
                "steps": plan.preview.steps.iter().map(|s| &s.mutation).collect::<Vec<_>>(),
                "entities": entities,
                "calls": calls.len(),
                "digest": digest,
                "money": plan.preview.money,
                "dry_run": !matches!(plan.preview.dry_run, DryRun::NotOffered),
            }),
        };
        let action = NewAction {
            id,
            service: &request.service,
            mutation: &plan.label,
            requester: &user.subject,
            requester_name: &user.name,
            reason,
            entity_count: i64::try_from(entities).unwrap_or(i64::MAX),
            dry_run_offered: !matches!(plan.preview.dry_run, DryRun::NotOffered),
            preview: &preview_json,
            digest: digest.as_str(),
            approvals_needed,
            now,
            expires_at,
            request_key: request.idempotency.as_ref().map(RequestKey::key),
            request_digest: request.idempotency.as_ref().map(RequestKey::digest),
        };
        self.action_store()
            .insert_runbook_preview(&action, &found, &calls, &audit)
            .await?;
        Ok(())
    }
}

/// A call's variables with `dryRun` set.
pub(crate) fn with_dry_run(variables: &Value, dry_run: bool) -> Value {
    let mut variables = variables.clone();
    if let Value::Object(map) = &mut variables {
        map.insert("dryRun".into(), Value::Bool(dry_run));
    }
    variables
}

//! The preview: the entities as the service's database has them, the exact requests
//! Runboard will send (in chunks), and the service's own dry run of each chunk. Its digest
//! is what an approval binds to.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use futures_util::stream::BoxStream;
use futures_util::{Stream, StreamExt};
use runboard_model::{
    ActionSpec, DryRun, Effect, EffectGroup, Money, Preview, Saga, add_to_totals,
};
use rust_decimal::Decimal;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use super::ActionError;
use crate::connector::Connector;
use crate::graphql_client::{CallError, MissionControl};

mod build;
mod cut;
pub(crate) use cut::{CallCutter, CutSoFar, EachOnce, PlannedCall};

/// Most entities one action may touch: a whole error group of a large outage. The preview
/// and the engine hold a window of chunks at a time, not the action, so memory stays bounded
/// (`scripts/bench --entities 1000000`).
pub const MAX_ENTITIES: usize = 1_000_000;

/// Effect groups an approver is shown; the rest are counted together.
const EFFECT_GROUPS: usize = 50;

/// The mutation document Runboard sends: every argument as a variable, and the effects back.
pub(crate) fn document(spec: &ActionSpec) -> String {
    let mut params: Vec<String> = spec
        .arguments
        .iter()
        .map(|a| format!("${}: {}", a.name, a.graphql_type()))
        .collect();
    let mut args: Vec<String> = spec
        .arguments
        .iter()
        .map(|a| format!("{0}: ${0}", a.name))
        .collect();
    if spec.dry_run {
        params.push("$dryRun: Boolean!".into());
        args.push("dryRun: $dryRun".into());
    }
    let params = if params.is_empty() {
        String::new()
    } else {
        format!("({})", params.join(", "))
    };
    format!(
        "mutation Runboard{params} {{ {}({}) {{ dryRun effects {{ entityId description amount currency }} }} }}",
        spec.mutation,
        args.join(", ")
    )
}

/// Splits the requested arguments into the entity list and the rest, checking them against
/// the schema so that a mistake is named before anything is sent. The entities are the
/// list argument's IDs; with a `selection` (read from the service as the calls are cut) in
/// its place, none are listed.
pub(crate) fn split_arguments(
    spec: &ActionSpec,
    arguments: &Value,
    selection: bool,
) -> Result<(Vec<String>, Map<String, Value>), ActionError> {
    let bad = |message: String| ActionError::BadArguments(message);
    let Value::Object(given) = arguments else {
        return Err(bad(
            "arguments must be a JSON object, one key per argument".into()
        ));
    };
    for key in given.keys() {
        if !spec.arguments.iter().any(|a| &a.name == key) {
            return Err(bad(format!(
                "{} takes no argument {key:?}; it takes {}",
                spec.mutation,
                spec.arguments
                    .iter()
                    .map(|a| format!("{}: {}", a.name, a.graphql_type()))
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
    }
    let entity_argument = spec.entity_argument().map(|a| a.name.clone());
    let mut rest = Map::new();
    let mut entities = Vec::new();
    if selection && entity_argument.is_none() {
        return Err(bad(format!(
            "{} takes no list of IDs, so it cannot act on a selection",
            spec.mutation
        )));
    }
    for argument in &spec.arguments {
        let value = given.get(&argument.name);
        if Some(&argument.name) == entity_argument.as_ref() {
            let named: Vec<String> = match (selection, value) {
                (true, Some(_)) => {
                    return Err(bad(format!(
                        "give either {} or a selection, not both",
                        argument.name
                    )));
                }
                (true, None) => continue,
                (false, value) => value
                    .and_then(Value::as_array)
                    .ok_or_else(|| bad(format!("{} must be a list of IDs", argument.name)))?
                    .iter()
                    .map(|id| {
                        id.as_str()
                            .map(|s| s.trim().to_owned())
                            .filter(|s| !s.is_empty())
                            .ok_or_else(|| {
                                bad(format!("{} must hold IDs as strings", argument.name))
                            })
                    })
                    .collect::<Result<_, _>>()?,
            };
            entities = named;
            keep_first(&mut entities);
            if entities.is_empty() {
                return Err(bad(format!(
                    "{} lists no IDs; name at least one",
                    argument.name
                )));
            }
            if entities.len() > MAX_ENTITIES {
                return Err(bad(format!(
                    "{} lists {} IDs; one action takes at most {MAX_ENTITIES}: split it in several",
                    argument.name,
                    entities.len()
                )));
            }
            continue;
        }
        match value {
            Some(Value::Null) | None if argument.required => {
                return Err(bad(format!(
                    "{} needs {} ({})",
                    spec.mutation,
                    argument.name,
                    argument.graphql_type()
                )));
            }
            Some(value) => {
                rest.insert(argument.name.clone(), value.clone());
            }
            None => {}
        }
    }
    Ok((entities, rest))
}

/// The variables of the call for one entity (or the single call, when `entity` is `None`).
pub(crate) fn variables(
    preview: &Preview,
    entities: &[String],
    dry_run: bool,
    spec_dry_run: bool,
) -> Value {
    let mut variables = match &preview.variables {
        Value::Object(map) => map.clone(),
        _ => Map::new(),
    };
    if let Some(argument) = &preview.entity_argument {
        variables.insert(argument.clone(), json!(entities));
    }
    if spec_dry_run {
        variables.insert("dryRun".into(), Value::Bool(dry_run));
    }
    Value::Object(variables)
}

/// An entity as the preview found it in the service's database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Found {
    pub(crate) id: String,
    /// Its state in words, or `None` when the service's database does not know it.
    pub(crate) state: Option<String>,
    pub(crate) held: Option<Money>,
}

/// Reads the entities' current state (and money held) from the service's database.
pub(crate) async fn resolve_entities(
    connector: &Connector,
    ids: &[String],
) -> Result<Vec<Found>, ActionError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    EntityReader::new(connector).await?.read(ids).await
}

/// A saga's state in words, as a preview shows it.
pub(crate) fn saga_state(saga: &Saga) -> String {
    let mut state = format!(
        "{} {} at {}",
        saga.status.as_str(),
        saga.saga_type,
        saga.current_step
    );
    if let Some(error) = &saga.error_message {
        state.push_str(": ");
        state.push_str(error);
    }
    state
}

/// Reads entities' current state from the service's database, a window at a time: the money
/// sagas hold is read once, the states of each window's entities by their IDs, unless the
/// selection already said them.
pub(crate) struct EntityReader<'a> {
    connector: &'a Connector,
    held: HashMap<String, Money>,
}

impl<'a> EntityReader<'a> {
    pub(crate) async fn new(connector: &'a Connector) -> Result<Self, ActionError> {
        let held = connector
            .withheld_by_saga()
            .await
            .map_err(ActionError::Read)?
            .unwrap_or_default()
            .into_iter()
            .collect();
        Ok(Self { connector, held })
    }

    /// The entities of `calls`, in order, as the selection's pages said them or, where they
    /// did not, as the service's database has them now (one lookup for all of them).
    pub(crate) async fn read_calls<'c>(
        &self,
        calls: impl Iterator<Item = &'c PlannedCall> + Clone,
    ) -> Result<Vec<Found>, ActionError> {
        let unknown: Vec<String> = calls
            .clone()
            .filter(|call| call.states.is_none())
            .flat_map(|call| call.ids.iter().cloned())
            .collect();
        let mut looked_up = if unknown.is_empty() {
            HashMap::new()
        } else {
            self.look_up(&unknown).await?
        };
        let mut found = Vec::new();
        for call in calls {
            for (n, id) in call.ids.iter().enumerate() {
                let state = match &call.states {
                    Some(states) => Some(states[n].to_string()),
                    None => looked_up.remove(id),
                };
                found.push(self.found(id, state));
            }
        }
        Ok(found)
    }

    /// `ids` as the service's database has them now, in the same order.
    pub(crate) async fn read(&self, ids: &[String]) -> Result<Vec<Found>, ActionError> {
        let mut states = self.look_up(ids).await?;
        Ok(ids
            .iter()
            .map(|id| self.found(id, states.remove(id)))
            .collect())
    }

    fn found(&self, id: &str, state: Option<String>) -> Found {
        Found {
            id: id.to_owned(),
            state,
            held: self.held.get(id).cloned(),
        }
    }

    /// The states of those of `ids` the service's database knows.
    async fn look_up(&self, ids: &[String]) -> Result<HashMap<String, String>, ActionError> {
        let (sagas, items) = tokio::join!(
            self.connector.find_sagas(ids),
            self.connector.find_batch_items(ids)
        );
        let mut states: HashMap<String, String> = HashMap::with_capacity(ids.len());
        for saga in sagas.map_err(ActionError::Read)? {
            let state = saga_state(&saga);
            states.insert(saga.saga_id, state);
        }
        for (batch, item) in items.map_err(ActionError::Read)? {
            let mut state = format!("{} item of batch {batch}", item.status.as_str());
            if let Some(error) = item.error {
                state.push_str(": ");
                state.push_str(&error);
            }
            states.entry(item.item_id).or_insert(state);
        }
        Ok(states)
    }
}

/// Where and how a dry run is sent.
pub(crate) struct DryRunner<'a> {
    pub(crate) mission_control: &'a MissionControl,
    pub(crate) document: &'a str,
    /// Calls in flight at once.
    pub(crate) concurrency: u32,
    /// The headers that name the action to the service.
    pub(crate) headers: &'a [(&'a str, String)],
    /// The most the whole dry run may take.
    pub(crate) limit: Duration,
}

/// A dry run's answer to one call: what the caller kept beside it, how many entities it
/// named, and the effects.
type Answer<T> = (T, usize, Vec<Effect>);

/// One call of a dry run: its variables (`dryRun` set), and how many entities it names.
pub(crate) struct DryRunCall {
    pub(crate) entities: usize,
    pub(crate) variables: Value,
}

impl DryRunner<'_> {
    /// [`DryRunner::stream`] of `calls`, their effects collected in order.
    pub(crate) async fn each(
        &self,
        calls: Vec<DryRunCall>,
    ) -> Result<Vec<Vec<Effect>>, ActionError> {
        let (answers, mut answered) = mpsc::channel(calls.len().max(1));
        let count = calls.len();
        let so_far = CutSoFar::known(calls.iter().map(|c| c.entities).sum());
        let calls = futures_util::stream::iter(calls.into_iter().map(|call| ((), call)));
        self.stream(calls, &so_far, answers).await?;
        let mut effects = Vec::with_capacity(count);
        while let Ok(((), call)) = answered.try_recv() {
            effects.push(call);
        }
        Ok(effects)
    }

    /// The dry run of every call as `calls` come (each with what the caller keeps beside
    /// it), each call's effects sent to `answers` with it as soon as they are in (in order),
    /// so that what is done with them overlaps the calls still out. Stops early, without an
    /// error, when nobody listens any more; `so_far` counts the entities, for a dry run that
    /// took too long to say how far it got.
    pub(crate) async fn stream<T: Send>(
        &self,
        calls: impl Stream<Item = (T, DryRunCall)> + Send,
        so_far: &CutSoFar,
        answers: mpsc::Sender<(T, Vec<Effect>)>,
    ) -> Result<(), ActionError> {
        let started = Instant::now();
        let mutation = mutation_of(self.document);
        // Boxed, so that the calls' stream is Send for every lifetime a server function needs.
        let mut requests: BoxStream<'_, Result<Answer<T>, ActionError>> = calls
            .map(|(kept, call)| async move {
                let data = self
                    .mission_control
                    .request(self.document, &call.variables, self.headers)
                    .await
                    .map_err(ActionError::Service)?;
                Ok((kept, call.entities, effects_of(&data, mutation)?))
            })
            .buffered(self.concurrency.max(1) as usize)
            .boxed();
        let mut covered = 0;
        let deadline = tokio::time::sleep(self.limit);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                answer = requests.next() => match answer {
                    Some(answer) => {
                        let (kept, entities, effects) = answer?;
                        if answers.send((kept, effects)).await.is_err() {
                            return Ok(());
                        }
                        covered += entities;
                    }
                    None => return Ok(()),
                },
                () = &mut deadline => {
                    return Err(ActionError::TooSlow(format!(
                        "the service's dry run covered {covered} {} in {:.0?}, the most a preview may take (actions.dry_run_time_limit); try again when the service is less busy, or name fewer entities",
                        so_far.of(),
                        started.elapsed()
                    )));
                }
            }
        }
    }
}

/// The mutation a document calls: the field after the operation's variables.
fn mutation_of(document: &str) -> &str {
    document
        .split_once("{ ")
        .and_then(|(_, rest)| rest.split(['(', ' ']).next())
        .unwrap_or_default()
}

/// The effects of a dry run, out of a mutation's answer.
pub(crate) fn effects_of(data: &Value, mutation: &str) -> Result<Vec<Effect>, ActionError> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Raw {
        entity_id: String,
        description: String,
        amount: Option<String>,
        currency: Option<String>,
    }
    let effects = data
        .get(mutation)
        .and_then(|r| r.get("effects"))
        .ok_or_else(|| {
            ActionError::Service(crate::graphql_client::CallError::Malformed(format!(
                "{mutation} answered without effects"
            )))
        })?;
    // Read in place: a million effects are not copied once more on their way.
    let raw = <Vec<Raw> as serde::Deserialize>::deserialize(effects).map_err(|e| {
        ActionError::Service(crate::graphql_client::CallError::Malformed(format!(
            "{mutation}'s effects do not read: {e}"
        )))
    })?;
    Ok(raw
        .into_iter()
        .map(|r| Effect {
            entity_id: r.entity_id,
            description: r.description,
            amount: r.amount,
            currency: r.currency,
        })
        .collect())
}

/// The dry run in sum as effects are added: how many, the money they move, and the
/// groups of effects that do the same thing.
#[derive(Default)]
pub(crate) struct EffectTally {
    effects: u64,
    money: Vec<Money>,
    groups: HashMap<String, EffectGroup>,
}

impl EffectTally {
    /// Counts one effect; an amount that does not parse is named.
    pub(crate) fn add(&mut self, effect: &Effect) -> Result<(), ActionError> {
        self.effects += 1;
        let group = self
            .groups
            .entry(what_it_does(&effect.description))
            .or_insert_with(|| EffectGroup {
                example: effect.description.clone(),
                count: 0,
                money: Vec::new(),
            });
        group.count += 1;
        if let (Some(amount), Some(currency)) = (&effect.amount, &effect.currency) {
            let amount: Decimal = amount.parse().map_err(|_| {
                ActionError::Service(CallError::Malformed(format!(
                    "the effect on {} names an amount that is not a decimal: {amount:?}",
                    effect.entity_id
                )))
            })?;
            add_to_totals(&mut self.money, amount.abs(), currency);
            add_to_totals(&mut group.money, amount.abs(), currency);
        }
        Ok(())
    }

    /// The dry run's summary and the money moved, the largest groups first.
    pub(crate) fn finish(self) -> (DryRun, Vec<Money>) {
        let mut groups: Vec<EffectGroup> = self.groups.into_values().collect();
        groups.sort_by(|a, b| b.count.cmp(&a.count).then(a.example.cmp(&b.example)));
        if groups.len() > EFFECT_GROUPS {
            let mut other = EffectGroup {
                example: "other effects".into(),
                count: 0,
                money: Vec::new(),
            };
            for group in groups.drain(EFFECT_GROUPS - 1..) {
                other.count += group.count;
                for money in group.money {
                    add_to_totals(&mut other.money, money.amount, &money.currency);
                }
            }
            groups.push(other);
        }
        let mut money = self.money;
        money.sort_by(|a, b| a.currency.cmp(&b.currency));
        (
            DryRun::Done {
                effects: self.effects,
                groups,
            },
            money,
        )
    }
}

/// What an effect does, whatever entity, amount or time it names: its words, with every
/// word that holds a digit (IDs, amounts, times, counts) replaced by `#`.
fn what_it_does(description: &str) -> String {
    description
        .split_whitespace()
        .map(|word| {
            if word.chars().any(|c| c.is_ascii_digit()) {
                "#"
            } else {
                word
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The digest an approval binds to: SHA-256 over every chunk in order (its number, each
/// member as found, the dry run's effects as stored) and then the preview's JSON, fed as
/// the chunks are made or read so that no action's size has to fit in memory at once. The
/// summary comes last because the dry run's totals are known only once every chunk is in.
pub(crate) struct Digester(Sha256);

impl Digester {
    pub(crate) fn new() -> Self {
        Self(Sha256::new())
    }

    /// One chunk; `planned` is its dry run's effects as the store keeps them.
    pub(crate) fn chunk(&mut self, chunk: u32, members: &[Found], planned: Option<&str>) {
        self.0.update(format!("chunk {chunk}\n"));
        for member in members {
            let held = member
                .held
                .as_ref()
                .map(|m| format!("{} {}", m.amount, m.currency));
            // Serialized from borrows: a million members are not copied into JSON values.
            let line = serde_json::to_string(&(&member.id, &member.state, held))
                .expect("a member serializes");
            self.0.update(line + "\n");
        }
        self.0.update(planned.unwrap_or("no dry run"));
        self.0.update("\n");
    }

    /// A runbook call's own variables, after its [`Digester::chunk`].
    pub(crate) fn variables(&mut self, variables: &str) {
        self.0.update(format!("variables {variables}\n"));
    }

    pub(crate) fn finish(mut self, preview: &Preview) -> runboard_model::Digest {
        self.0
            .update(serde_json::to_string(preview).expect("a preview serializes"));
        runboard_model::Digest::from(crate::audit::hex(&self.0.finalize()))
    }
}

/// Keeps the first of each ID, in order: a pasted list often repeats one, and pages read
/// from a service may overlap.
pub(crate) fn keep_first(ids: &mut Vec<String>) {
    let keep = first_of_each(ids);
    keep_marked(ids, &keep);
}

/// Whether each of `ids` is the first of its kind. Borrows the IDs to compare them, so that
/// a million of them are not held twice.
fn first_of_each(ids: &[String]) -> Vec<bool> {
    let mut seen = HashSet::with_capacity(ids.len());
    ids.iter().map(|id| seen.insert(id.as_str())).collect()
}

/// Keeps the elements of `list` that `keep` marks (by position).
fn keep_marked<T>(list: &mut Vec<T>, keep: &[bool]) {
    let mut keep = keep.iter();
    list.retain(|_| keep.next().copied().unwrap_or(true));
}

/// Effects in a comparable order: the order a service lists them in does not matter.
pub(crate) fn sorted(mut effects: Vec<Effect>) -> Vec<Effect> {
    effects.sort_by(|a, b| {
        a.entity_id
            .cmp(&b.entity_id)
            .then(a.description.cmp(&b.description))
    });
    effects
}

#[cfg(test)]
pub(super) mod tests;

//! The preview: the entities as the service's database has them, the exact requests
//! Runboard will send, and the service's own dry run of them. Its digest is what an
//! approval binds to.

use std::collections::BTreeMap;

use runboard_model::{ActionSpec, DryRun, Effect, Money, Preview, PreviewEntity, add_to_totals};
use rust_decimal::Decimal;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::ActionError;
use crate::connector::Connector;

/// Most entities one action may touch.
pub const MAX_ENTITIES: usize = 10_000;

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

/// Splits the requested arguments into the entity list (one call each) and the rest,
/// checking them against the schema so that a mistake is named before anything is sent.
pub(crate) fn split_arguments(
    spec: &ActionSpec,
    arguments: &Value,
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
    for argument in &spec.arguments {
        let value = given.get(&argument.name);
        if Some(&argument.name) == entity_argument.as_ref() {
            let list = value
                .and_then(Value::as_array)
                .ok_or_else(|| bad(format!("{} must be a list of IDs", argument.name)))?;
            for id in list {
                let id = id
                    .as_str()
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .ok_or_else(|| bad(format!("{} must hold IDs as strings", argument.name)))?;
                if !entities.iter().any(|e| e == id) {
                    entities.push(id.to_owned());
                }
            }
            if entities.is_empty() {
                return Err(bad(format!(
                    "{} lists no IDs; name at least one",
                    argument.name
                )));
            }
            if entities.len() > MAX_ENTITIES {
                return Err(bad(format!(
                    "{} lists {} IDs; one action takes at most {MAX_ENTITIES}",
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

/// Reads the entities' current state (and money held) from the service's database.
pub(crate) async fn resolve_entities(
    connector: &Connector,
    ids: &[String],
) -> Result<Vec<PreviewEntity>, ActionError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let (sagas, items, funds) = tokio::join!(
        connector.find_sagas(ids),
        connector.find_batch_items(ids),
        connector.withheld_by_saga(),
    );
    let mut states: BTreeMap<String, String> = BTreeMap::new();
    for saga in sagas.map_err(ActionError::Read)? {
        let mut state = format!(
            "{} {} at {}",
            saga.status.as_str(),
            saga.saga_type,
            saga.current_step
        );
        if let Some(error) = saga.error_message {
            state.push_str(": ");
            state.push_str(&error);
        }
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
    let money: BTreeMap<String, Money> = funds
        .map_err(ActionError::Read)?
        .unwrap_or_default()
        .into_iter()
        .collect();
    Ok(ids
        .iter()
        .map(|id| PreviewEntity {
            id: id.clone(),
            state: states.get(id).cloned(),
            money: money.get(id).cloned(),
        })
        .collect())
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
        .cloned()
        .ok_or_else(|| {
            ActionError::Service(crate::mission_control::CallError::Malformed(format!(
                "{mutation} answered without effects"
            )))
        })?;
    let raw: Vec<Raw> = serde_json::from_value(effects).map_err(|e| {
        ActionError::Service(crate::mission_control::CallError::Malformed(format!(
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

/// The money the effects move, per currency; amounts that do not parse are named.
pub(crate) fn money_moved(dry_run: &DryRun) -> Result<Vec<Money>, ActionError> {
    let mut totals = Vec::new();
    if let DryRun::Effects { effects } = dry_run {
        for effect in effects {
            if let (Some(amount), Some(currency)) = (&effect.amount, &effect.currency) {
                let amount: Decimal = amount.parse().map_err(|_| {
                    ActionError::Service(crate::mission_control::CallError::Malformed(format!(
                        "the effect on {} names an amount that is not a decimal: {amount:?}",
                        effect.entity_id
                    )))
                })?;
                add_to_totals(&mut totals, amount.abs(), currency);
            }
        }
    }
    Ok(totals)
}

/// SHA-256 of the preview's JSON: any change to what is sent or what it does changes it.
pub(crate) fn digest(preview: &Preview) -> String {
    let text = serde_json::to_string(preview).expect("a preview serializes");
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

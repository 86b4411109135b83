//! What the demo fleet's services received, read from their own call logs: the calls of an
//! action (by the idempotency keys Runboard sent, or by its `X-Runboard-Action` header), the
//! entities they applied, and what each key named.

use std::collections::BTreeMap;

use runboard_fleet::CallRecord;
use serde_json::Value;

use super::TestFleet;

impl TestFleet {
    /// The calls `service` received under the idempotency keys of action `action_id`
    /// (`runboard:<action>:…`), dry runs included, oldest first.
    pub async fn keyed_calls(&self, service: &str, action_id: &str) -> Vec<CallRecord> {
        let prefix = format!("runboard:{action_id}:");
        self.fleet
            .call_log(service)
            .await
            .unwrap()
            .into_iter()
            .filter(|c| {
                c.idempotency_key
                    .as_deref()
                    .is_some_and(|k| k.starts_with(&prefix))
            })
            .collect()
    }

    /// The real (not dry-run) calls of [`Self::keyed_calls`].
    pub async fn real_keyed_calls(&self, service: &str, action_id: &str) -> Vec<CallRecord> {
        let mut calls = self.keyed_calls(service, action_id).await;
        calls.retain(|c| !c.dry_run);
        calls
    }
}

/// The entities a call named (its `ids` variable).
pub fn ids_of(call: &CallRecord) -> Vec<String> {
    call.variables["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|id| id.as_str().unwrap().to_owned())
        .collect()
}

/// The entities the applied calls named, in the order sent.
pub fn applied_entities(calls: &[CallRecord]) -> Vec<String> {
    calls
        .iter()
        .filter(|c| c.applied)
        .flat_map(ids_of)
        .collect()
}

/// How many times each entity was applied, by the service's own log.
pub fn applied_counts(calls: &[CallRecord]) -> BTreeMap<String, usize> {
    let mut applied = BTreeMap::new();
    for id in applied_entities(calls) {
        *applied.entry(id).or_default() += 1;
    }
    applied
}

/// Every time a key was sent, it named the same entities.
pub fn assert_each_key_names_the_same_entities(calls: &[CallRecord]) {
    let mut named: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for call in calls {
        let key = call.idempotency_key.as_deref().unwrap();
        let ids = ids_of(call);
        let first = named.entry(key).or_insert_with(|| ids.clone());
        assert_eq!(*first, ids, "{key} named other entities when sent again");
    }
}

/// The entities the service applied for an action, in the order its log has them.
pub async fn applied_for(fleet: &TestFleet, service: &str, action_id: &str) -> Vec<String> {
    applied_entities(&fleet.keyed_calls(service, action_id).await)
}

/// The real (not dry-run) calls `service` received for action `action`, oldest first.
pub async fn real_calls_of(fleet: &TestFleet, service: &str, action: &str) -> Vec<CallRecord> {
    fleet
        .fleet
        .call_log(service)
        .await
        .unwrap()
        .into_iter()
        .filter(|c| !c.dry_run && c.action.as_deref() == Some(action))
        .collect()
}

/// Where in `calls` the demo runbook's two steps for `saga` stand: its transfers (by their
/// reference `RB-<saga>`) and its completions.
pub fn runbook_steps_of(calls: &[CallRecord], saga: &str) -> (Vec<usize>, Vec<usize>) {
    let reference = format!("RB-{saga}");
    let named = |mutation: &str, names: &dyn Fn(&Value) -> bool| -> Vec<usize> {
        (0..calls.len())
            .filter(|&i| calls[i].mutation == mutation && names(&calls[i].variables))
            .collect()
    };
    (
        named("transferFunds", &|v| v["reference"] == reference.as_str()),
        named("forceCompleteSagas", &|v| {
            v["ids"] == serde_json::json!([saga])
        }),
    )
}

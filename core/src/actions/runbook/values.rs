//! The values a runbook's placeholders stand for, read for every entity at once from the
//! service's data: its supervisor row or batch item, the money it holds, and the facts the
//! service keeps about it. One read per relation (in chunks), whatever the number of
//! entities, and only the relations the runbook's placeholders name.

use std::collections::{BTreeMap, BTreeSet};

use super::template::{Namespace, Placeholder, Values};
use crate::connector::{Connector, ReadError};

/// Each entity's values (by id) for `needed`, the placeholders of a runbook's steps;
/// `params` are the operator's, the same for every entity. A value an entity lacks (no money
/// held, no such fact) is simply absent: filling a template in names it.
pub async fn entity_values(
    connector: &Connector,
    ids: &[String],
    needed: &[&Placeholder],
    params: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, Values>, ReadError> {
    let namespaces: BTreeSet<Namespace> = needed.iter().map(|p| p.namespace).collect();
    let reads = |namespace| namespaces.contains(&namespace);
    let (sagas, items, funds, facts) = tokio::join!(
        async {
            if reads(Namespace::Saga) {
                connector.find_sagas(ids).await
            } else {
                Ok(Vec::new())
            }
        },
        async {
            if reads(Namespace::Item) {
                connector.find_batch_items(ids).await
            } else {
                Ok(Vec::new())
            }
        },
        async {
            if reads(Namespace::Funds) {
                connector.withheld_by_saga().await
            } else {
                Ok(None)
            }
        },
        async {
            if reads(Namespace::Facts) {
                connector.facts_of(ids).await
            } else {
                Ok(None)
            }
        },
    );

    let mut values: BTreeMap<String, Values> = ids
        .iter()
        .map(|id| {
            let mut own = Values::new();
            own.insert(value(Namespace::Entity, "id"), id.clone());
            for (name, given) in params {
                own.insert(value(Namespace::Param, name), given.clone());
            }
            (id.clone(), own)
        })
        .collect();
    let mut set = |id: &str, namespace, field: &str, text: String| {
        if let Some(own) = values.get_mut(id) {
            own.insert(value(namespace, field), text);
        }
    };
    for saga in sagas? {
        set(&saga.saga_id, Namespace::Saga, "type", saga.saga_type);
        set(&saga.saga_id, Namespace::Saga, "step", saga.current_step);
        let status = saga.status.as_str().to_owned();
        set(&saga.saga_id, Namespace::Saga, "status", status);
        if let Some(error) = saga.error_message {
            set(&saga.saga_id, Namespace::Saga, "error", error);
        }
    }
    for (batch, item) in items? {
        set(&item.item_id, Namespace::Item, "batch", batch);
        let status = item.status.as_str().to_owned();
        set(&item.item_id, Namespace::Item, "status", status);
        if let Some(error) = item.error {
            set(&item.item_id, Namespace::Item, "error", error);
        }
    }
    for (saga_id, held) in funds?.unwrap_or_default() {
        set(
            &saga_id,
            Namespace::Funds,
            "amount",
            held.amount.to_string(),
        );
        set(&saga_id, Namespace::Funds, "currency", held.currency);
    }
    for (saga_id, fact) in facts?.unwrap_or_default() {
        set(&saga_id, Namespace::Facts, &fact.name, fact.value);
    }
    Ok(values)
}

fn value(namespace: Namespace, field: &str) -> Placeholder {
    Placeholder {
        namespace,
        field: field.to_owned(),
    }
}

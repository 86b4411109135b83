use chrono::{DateTime, Utc};
use leptos::prelude::*;
use runboard_model::{Action, EntityResult};
use serde::{Deserialize, Serialize};

/// One audit entry as the action page lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditLine {
    pub seq: i64,
    pub at: DateTime<Utc>,
    pub actor: String,
    pub kind: String,
    pub hash: String,
}

/// What the action page shows, and which of its buttons this person may press.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionPage {
    pub read_at: DateTime<Utc>,
    pub action: Action,
    pub entities: Vec<EntityResult>,
    pub audit: Vec<AuditLine>,
    pub viewer: String,
    pub may_operate: bool,
    pub may_approve: bool,
}

/// One action with its per-entity results and audit trail.
#[server(prefix = "/rpc", endpoint = "action")]
pub async fn read_action(id: String) -> Result<ActionPage, ServerFnError> {
    use runboard_model::Role;
    let app = super::app_for(super::Access::Read)?;
    let user = super::user()?;
    let action = app.action(&id).await.map_err(super::action_failed)?;
    let entities = app
        .action_entities(&id)
        .await
        .map_err(super::action_failed)?;
    let audit = app
        .store
        .audit_of_action(&id)
        .await
        .map_err(|e| super::internal("reading the audit trail", e))?
        .into_iter()
        .map(|e| AuditLine {
            seq: e.seq,
            at: e.at,
            actor: e.actor,
            kind: e.kind,
            hash: e.hash,
        })
        .collect();
    Ok(ActionPage {
        read_at: Utc::now(),
        action,
        entities,
        audit,
        may_operate: user.has(Role::Operator),
        may_approve: user.has(Role::Approver),
        viewer: user.subject,
    })
}

use chrono::{DateTime, Utc};
use leptos::prelude::*;
use runboard_model::{Action, ActionId, EntityResult, EntityState, PersonKey};
use serde::{Deserialize, Serialize};

use super::ScreenError;

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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionPage {
    pub read_at: DateTime<Utc>,
    pub action: Action,
    /// One page of its entities, as found, planned and done.
    pub entities: Vec<EntityResult>,
    /// Only the entities in this state are listed.
    pub only: Option<EntityState>,
    /// The position to read the next page after, when there is one.
    pub next: Option<u64>,
    pub audit: Vec<AuditLine>,
    pub viewer: PersonKey,
    pub may_operate: bool,
    pub may_approve: bool,
}

/// Entities one page of the action page lists.
#[cfg(feature = "ssr")]
const ENTITIES_SHOWN: u32 = 100;

/// One action with a page of its entities (after the position `after`, only those in the
/// state `only` if given: "pending", "succeeded" or "failed") and its audit trail.
#[server(prefix = "/rpc", endpoint = "action")]
pub async fn read_action(
    id: ActionId,
    after: Option<u64>,
    only: Option<String>,
) -> Result<ActionPage, ScreenError> {
    use runboard_core::actions::EntityPage;
    use runboard_model::Role;
    let app = super::app_for::<ReadAction>()?;
    let user = super::user()?;
    let only = match only.as_deref().filter(|o| !o.is_empty()) {
        None => None,
        Some(text) => Some(EntityState::parse(text).ok_or_else(|| {
            ScreenError::refused(
                http::StatusCode::BAD_REQUEST,
                format!("only={text:?} is not a state; use pending, succeeded or failed"),
            )
        })?),
    };
    let action = app.action(&id).await?;
    let page = EntityPage {
        after,
        limit: ENTITIES_SHOWN + 1,
        state: only,
    };
    let mut entities = app.action_entities(&action, &page).await?;
    let next = (entities.len() > ENTITIES_SHOWN as usize).then(|| {
        entities.truncate(ENTITIES_SHOWN as usize);
        entities.last().map_or(0, |e| e.position)
    });
    let audit = app
        .store
        .audit_of_action(&id)
        .await
        .map_err(|e| ScreenError::internal("reading the audit trail", e))?
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
        only,
        next,
        audit,
        may_operate: user.has(Role::Operator),
        may_approve: user.has(Role::Approver),
        viewer: user.subject,
    })
}

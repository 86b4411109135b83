//! Runbooks kept under a name per service ("transfer the held funds and force-complete"),
//! listed on its screens and started on any selection. Each is checked against the
//! service's catalog when saved, and again when started.

use chrono::{DateTime, Utc};
use runboard_model::{PersonKey, Role, RunbookStep, SavedRunbook, ServiceName, User};
use serde_json::json;

use super::template::{Namespace, Template};
use crate::App;
use crate::actions::ActionError;
use crate::audit::{Actor, NewAuditEntry, append_audit};
use crate::db::{BeginWrite, on_pool};
use crate::store::StoreError;

/// A runbook to save: its name is its key within the service.
#[derive(Debug, Clone, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RunbookDraft {
    pub service: ServiceName,
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub steps: Vec<RunbookStep>,
}

#[derive(sqlx::FromRow)]
struct Row {
    id: String,
    service: ServiceName,
    name: String,
    description: String,
    steps: String,
    updated_by: String,
    updated_at: DateTime<Utc>,
}

impl Row {
    fn into_runbook(self) -> Result<SavedRunbook, ActionError> {
        let steps: Vec<RunbookStep> = serde_json::from_str(&self.steps)
            .map_err(|e| ActionError::Store(StoreError::corrupt(e)))?;
        Ok(SavedRunbook {
            params: params_of(&steps),
            id: self.id,
            service: self.service,
            name: self.name,
            description: self.description,
            steps,
            updated_by: self.updated_by,
            updated_at: self.updated_at,
        })
    }
}

/// The parameters the steps use, once each, in order.
fn params_of(steps: &[RunbookStep]) -> Vec<String> {
    let mut params = Vec::new();
    for step in steps {
        let Some(arguments) = step.arguments.as_object() else {
            continue;
        };
        let Ok(template) = Template::parse(arguments) else {
            continue;
        };
        for placeholder in template.placeholders() {
            if placeholder.namespace == Namespace::Param && !params.contains(&placeholder.field) {
                params.push(placeholder.field.clone());
            }
        }
    }
    params
}

const COLUMNS: &str = "id, service, name, description, steps, updated_by, updated_at";

impl App {
    /// Saves a runbook under its name for its service, once every step checks against the
    /// service's catalog. Needs the operator role. A runbook of that name already saved is
    /// changed only by its author or an admin; what it was is kept in `runbook_version`.
    pub async fn save_runbook(
        &self,
        user: &User,
        draft: &RunbookDraft,
    ) -> Result<SavedRunbook, ActionError> {
        if !user.has(Role::Operator) {
            return Err(ActionError::Forbidden(
                "saving runbooks needs the operator role".into(),
            ));
        }
        let name = draft.name.trim();
        if name.is_empty() {
            return Err(ActionError::BadArguments(
                "a runbook needs a name that says what it does".into(),
            ));
        }
        let connector = self.action_connector(&draft.service)?;
        self.checked_steps(&connector, &draft.steps).await?;
        let steps = serde_json::to_string(&draft.steps).expect("steps serialize");
        let now = crate::audit::now();
        let new_id = uuid::Uuid::new_v4().to_string();
        let id: String = on_pool!(self.store.pool, |pool| {
            let mut tx = pool.begin_write().await?;
            let saved: Option<(String, PersonKey, String, String)> = sqlx::query_as(
                "SELECT id, created_by, description, steps FROM runbook WHERE service = $1 AND name = $2",
            )
            .bind(&draft.service)
            .bind(name)
            .fetch_optional(&mut *tx)
            .await?;
            let (id, kind) = match saved {
                // Saved again as it is (the demo at every start): nothing to keep or tell.
                Some((id, _, description, saved_steps))
                    if description == draft.description.trim() && saved_steps == steps =>
                {
                    (id, None)
                }
                Some((_, author, _, _)) if author != user.subject && !user.has(Role::Admin) => {
                    return Err(ActionError::Forbidden(format!(
                        "the runbook \"{name}\" of {} was written by {author}: only they or an admin change it; save yours under another name",
                        draft.service
                    )));
                }
                Some((id, ..)) => {
                    // The version it replaces, kept, in the same transaction as the change.
                    sqlx::query(
                        "INSERT INTO runbook_version (runbook_id, description, steps, updated_by, updated_at, replaced_at)
                         SELECT id, description, steps, updated_by, updated_at, $2 FROM runbook WHERE id = $1",
                    )
                    .bind(&id)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                    sqlx::query(
                        "UPDATE runbook SET description = $2, steps = $3, updated_by = $4, updated_at = $5
                         WHERE id = $1",
                    )
                    .bind(&id)
                    .bind(draft.description.trim())
                    .bind(&steps)
                    .bind(&user.subject)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                    (id, Some("runbook.changed"))
                }
                None => {
                    sqlx::query(
                        "INSERT INTO runbook (id, service, name, description, steps, created_by, updated_by,
                             created_at, updated_at)
                         VALUES ($1, $2, $3, $4, $5, $6, $6, $7, $7)",
                    )
                    .bind(&new_id)
                    .bind(&draft.service)
                    .bind(name)
                    .bind(draft.description.trim())
                    .bind(&steps)
                    .bind(&user.subject)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                    (new_id, Some("runbook.saved"))
                }
            };
            if let Some(kind) = kind {
                let audit = NewAuditEntry {
                    actor: Actor::Person(&user.subject),
                    action_id: None,
                    kind,
                    detail: json!({ "service": draft.service, "name": name, "runbook": id, "steps": draft.steps.len() }),
                };
                append_audit!(tx, &audit);
                tx.commit().await?;
            }
            id
        });
        self.runbook(&id).await
    }

    /// A service's runbooks, by name.
    pub async fn runbooks_of(
        &self,
        service: &ServiceName,
    ) -> Result<Vec<SavedRunbook>, ActionError> {
        let query = format!("SELECT {COLUMNS} FROM runbook WHERE service = $1 ORDER BY name");
        let rows: Vec<Row> = on_pool!(self.store.pool, |pool| {
            sqlx::query_as(&query).bind(service).fetch_all(pool).await?
        });
        rows.into_iter().map(Row::into_runbook).collect()
    }

    /// One saved runbook.
    pub async fn runbook(&self, id: &str) -> Result<SavedRunbook, ActionError> {
        let query = format!("SELECT {COLUMNS} FROM runbook WHERE id = $1");
        let row: Option<Row> = on_pool!(self.store.pool, |pool| {
            sqlx::query_as(&query).bind(id).fetch_optional(pool).await?
        });
        row.ok_or_else(|| ActionError::NoRunbook(id.to_owned()))?
            .into_runbook()
    }
}

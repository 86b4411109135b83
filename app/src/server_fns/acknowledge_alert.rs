use leptos::prelude::*;

/// Records that the caller is on an alert, with a note for the others.
#[server(prefix = "/rpc", endpoint = "acknowledge_alert")]
pub async fn acknowledge_alert(id: i64, note: String) -> Result<(), ServerFnError> {
    use runboard_core::watches::AcknowledgeError;
    let app = super::app_for(super::Access::Operate)?;
    let user = super::user()?;
    app.store
        .acknowledge_alert(id, &user.name, note.trim(), chrono::Utc::now())
        .await
        .map(drop)
        .map_err(|error| match error {
            AcknowledgeError::Unknown(_) => super::refuse(http::StatusCode::NOT_FOUND, error),
            AcknowledgeError::Resolved(_) | AcknowledgeError::Already { .. } => {
                super::refuse(http::StatusCode::CONFLICT, error)
            }
            AcknowledgeError::Store(e) => super::internal("acknowledging an alert", e),
        })
}

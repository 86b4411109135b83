use leptos::prelude::*;

use runboard_model::{ActionId, Digest};

use super::ScreenError;

/// Approves the preview with this digest: the one the approver read.
#[server(prefix = "/rpc", endpoint = "approve_action")]
pub async fn approve_action(id: ActionId, digest: Digest) -> Result<(), ScreenError> {
    let app = super::app_for::<ApproveAction>()?;
    app.approve_action(&super::user()?, &id, &digest).await?;
    Ok(())
}

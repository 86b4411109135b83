use leptos::prelude::*;
use runboard_model::AlertBoard;

use super::ScreenError;

/// The alerts board for what every page shows of it (the navigation's count, a service's
/// alerts): shared by everyone watching for a second, so a crowd costs the store one read.
#[server(prefix = "/rpc", endpoint = "alerts_on_page")]
pub async fn alerts_on_page() -> Result<AlertBoard, ScreenError> {
    let app = super::app_for::<AlertsOnPage>()?;
    app.screens
        .alert_board(&app.store)
        .await
        .map(|board| board.value.clone())
        .map_err(|e| ScreenError::internal("reading the alerts", e))
}

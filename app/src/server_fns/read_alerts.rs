use leptos::prelude::*;
use runboard_model::AlertBoard;

use super::ScreenError;

/// The alerts board as the store has it now (the Alerts screen): open alerts, those
/// resolved in the last 7 days, the silences in force.
#[server(prefix = "/rpc", endpoint = "alerts")]
pub async fn read_alerts() -> Result<AlertBoard, ScreenError> {
    let app = super::app_for::<ReadAlerts>()?;
    app.store
        .alert_board(app.clock.now())
        .await
        .map_err(|e| ScreenError::internal("reading the alerts", e))
}

use leptos::prelude::*;

use super::ScreenError;

/// Silences alerts of a service (empty: all) and a watch (empty: all) for a while.
#[server(prefix = "/rpc", endpoint = "silence_alerts")]
pub async fn silence_alerts(
    service: String,
    watch: String,
    lasting: String,
    reason: String,
) -> Result<(), ScreenError> {
    use runboard_core::watches::SilenceRequest;
    let app = super::app_for::<SilenceAlerts>()?;
    let request = SilenceRequest {
        service: Some(&service),
        watch: Some(&watch),
        lasting: &lasting,
        reason: &reason,
    };
    app.silence_alerts(&super::user()?, request).await?;
    Ok(())
}

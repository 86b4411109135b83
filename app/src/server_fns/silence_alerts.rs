use leptos::prelude::*;

/// Silences alerts of a service (empty: all) and a watch (empty: all) for a while.
#[server(prefix = "/rpc", endpoint = "silence_alerts")]
pub async fn silence_alerts(
    service: String,
    watch: String,
    lasting: String,
    reason: String,
) -> Result<(), ServerFnError> {
    use runboard_core::watches::SilenceRequest;
    let app = super::app_for(super::Access::Operate)?;
    let request = SilenceRequest {
        service: Some(&service),
        watch: Some(&watch),
        lasting: &lasting,
        reason: &reason,
    };
    app.silence_alerts(&super::user()?, request)
        .await
        .map(drop)
        .map_err(super::failed)
}

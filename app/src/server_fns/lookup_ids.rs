use leptos::prelude::*;
use runboard_model::LookupResult;

use super::ScreenError;

/// The IDs in a pasted text, matched across all services.
#[server(prefix = "/rpc", endpoint = "lookup")]
pub async fn lookup_ids(text: String) -> Result<LookupResult, ScreenError> {
    let app = super::app_for::<LookupIds>()?;
    Ok(runboard_core::lookup::lookup(&app.fleet, &text).await?)
}

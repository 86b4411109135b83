//! The embedded default's wiring: the demo fleet's services, registered as a config would.

use std::path::Path;
use std::time::Duration;

#[cfg(feature = "demo")]
use runboard_core::config::ServiceConfig;
use runboard_core::identity::demo;
use runboard_core::store::Store;
#[cfg(feature = "demo")]
use runboard_fleet::ServiceInfo;
use serde::Serialize;

/// How long the demo users' API tokens live; each start issues new ones.
const DEMO_TOKEN_LIFETIME: Duration = Duration::from_secs(30 * 24 * 3600);

/// A demo user as `DATA_DIR/demo-users.json` lists them.
#[derive(Serialize)]
pub struct DemoUser {
    pub login: String,
    pub name: String,
    pub roles: Vec<String>,
    pub token: String,
}

/// Issues each demo user a fresh personal API token (revoking the previous run's), prints
/// them, and writes them to `DATA_DIR/demo-users.json` (SPEC.md, "Running it").
pub async fn issue_demo_tokens(store: &Store, data_dir: &Path) -> Result<Vec<DemoUser>, String> {
    let now = chrono::Utc::now();
    let mut listed = Vec::new();
    for user in demo::users() {
        store
            .revoke_api_tokens_labelled(&user.subject, demo::TOKEN_LABEL, now)
            .await
            .map_err(|e| e.to_string())?;
        let issued = store
            .issue_api_token(&user, demo::TOKEN_LABEL, DEMO_TOKEN_LIFETIME, now)
            .await
            .map_err(|e| e.to_string())?;
        listed.push(DemoUser {
            login: demo::login(&user).to_owned(),
            roles: user.roles.iter().map(|r| r.to_string()).collect(),
            name: user.name,
            token: issued.secret,
        });
    }
    let path = data_dir.join("demo-users.json");
    let json = serde_json::to_string_pretty(&listed).expect("demo users serialize");
    write_private(&path, &json).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    for user in &listed {
        println!(
            "demo user {:<6} {:<15} {:<18} API token {}",
            user.login,
            user.name,
            user.roles.join(","),
            user.token
        );
    }
    println!("demo users and tokens written to {}", path.display());
    Ok(listed)
}

/// Writes a file only its owner can read: it holds live tokens.
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(contents.as_bytes())
}

/// A demo fleet service as a `[[services]]` entry would register it.
#[cfg(feature = "demo")]
pub fn service_config(service: &ServiceInfo) -> Result<ServiceConfig, String> {
    let invalid = |what: &str, e: &dyn std::fmt::Display| {
        format!("service {} has an invalid {what}: {e}", service.name)
    };
    let mut config = ServiceConfig::new(
        service.name.parse().map_err(|e| invalid("name", &e))?,
        service.team.clone(),
        service.database_url.clone(),
        service
            .graphql_url
            .parse()
            .map_err(|e| invalid("GraphQL URL", &e))?,
    );
    config.stuck_after = Some(service.stuck_after);
    config.queries.withheld_funds = service.withheld_funds_query.clone();
    config.queries.saga_events = service.saga_events_query.clone();
    config.queries.entity_facts = service.entity_facts_query.clone();
    Ok(config)
}

/// Writes the demo fleet's services and their GraphQL endpoints to
/// `DATA_DIR/demo-fleet.json`, for scripts that drive the fleet's demo controls
/// (`injectError`, `setLegalHold`, `callLog`).
#[cfg(feature = "demo")]
pub fn write_fleet_file(data_dir: &Path, services: &[ServiceInfo]) -> Result<(), String> {
    let listed: Vec<serde_json::Value> = services
        .iter()
        .map(|s| serde_json::json!({ "name": s.name, "graphql_url": s.graphql_url }))
        .collect();
    let path = data_dir.join("demo-fleet.json");
    let json = serde_json::to_string_pretty(&listed).expect("the fleet serializes");
    std::fs::write(&path, json).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// payments' "Transfer the held funds and force-complete", the fix the README walks through:
/// book each held transfer's money by hand between its own accounts, then mark its saga
/// completed. As `POST /api/v1/runbooks` takes it.
pub fn held_transfer_runbook() -> serde_json::Value {
    serde_json::json!({
        "service": "payments",
        "name": "Transfer the held funds and force-complete",
        "description": "For transfers stuck after the ledger refused them, holding their money: \
            book the held amount by hand between the transfer's own accounts, then mark the \
            saga completed. The reference RB-<saga> makes a second run refuse, so money never \
            moves twice.",
        "steps": [
            {
                "title": "Transfer the held funds",
                "mutation": "transferFunds",
                "arguments": {
                    "fromAccount": "{{ facts.from_account }}",
                    "toAccount": "{{ facts.to_account }}",
                    "amount": "{{ funds.amount }}",
                    "currency": "{{ funds.currency }}",
                    "reference": "RB-{{ entity.id }}",
                },
            },
            {
                "title": "Force-complete the saga",
                "mutation": "forceCompleteSagas",
                "arguments": { "reason": "{{ param.reason }}" },
            },
        ],
    })
}

/// Saves the demo fleet's runbooks (again, at every start): [`held_transfer_runbook`]. A
/// failure is logged; the demo serves without it.
pub async fn save_runbooks(app: &runboard_core::App) {
    let demo = runboard_model::User {
        subject: "runboard-demo".into(),
        name: "Runboard demo".into(),
        roles: [runboard_model::Role::Operator].into(),
    };
    let draft: runboard_core::actions::runbook::RunbookDraft =
        serde_json::from_value(held_transfer_runbook()).expect("the demo runbook reads");
    match app.save_runbook(&demo, &draft).await {
        Ok(saved) => tracing::info!(runbook = %saved.id, name = %saved.name, "demo runbook saved"),
        Err(e) => tracing::warn!(error = %e, "the demo runbook could not be saved"),
    }
}

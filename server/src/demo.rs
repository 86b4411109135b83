//! The embedded default's wiring: the demo fleet's services, registered as a config would.

use runboard_core::config::ServiceConfig;
use runboard_fleet::ServiceInfo;

/// A demo fleet service as a `[[services]]` entry would register it.
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
    Ok(config)
}

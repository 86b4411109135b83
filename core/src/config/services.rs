//! One service's settings: where its database and mission control are, and its contract queries.

use std::time::Duration;

use runboard_dialect::Dialect;
use runboard_model::ServiceName;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use url::Url;

use super::WatchTuning;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Thresholds {
    /// Default for services that set no `stuck_after` of their own.
    #[serde(with = "humantime_serde")]
    pub stuck_after: Duration,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            stuck_after: Duration::from_secs(30 * 60),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceConfig {
    pub name: ServiceName,
    pub team: String,
    /// Read access to the service's own database; a secret, as it may carry a password.
    #[serde(deserialize_with = "super::secret::string")]
    pub database_url: SecretString,
    /// The service's mission-control GraphQL endpoint; never with credentials in it (they
    /// would be shown in every preview), which go in `graphql_token`.
    pub graphql_url: Url,
    /// Runboard's bearer token for that endpoint, where the service asks for one.
    #[serde(default, deserialize_with = "super::secret::optional")]
    pub graphql_token: Option<SecretString>,
    /// The audience of the access token Runboard gets for this service from
    /// `[mission_control_tokens]`, where the service takes the provider's tokens instead.
    #[serde(default)]
    pub token_audience: Option<String>,
    /// Overrides `thresholds.stuck_after` for this service.
    #[serde(default, with = "humantime_serde")]
    pub stuck_after: Option<Duration>,
    /// The contract's relations, or queries standing in for them.
    #[serde(default)]
    pub queries: ContractQueries,
    /// Longest any one read of this service may take before it counts as failed.
    #[serde(default = "default_query_timeout", with = "humantime_serde")]
    pub query_timeout: Duration,
    /// Connections Runboard may hold open to this service's database.
    #[serde(default = "default_service_connections")]
    pub max_connections: u32,
    /// Most rows one read may bring back (funds, error groups, batches).
    #[serde(default = "default_row_limit")]
    pub row_limit: u32,
    /// A regular expression for this service's IDs that are not UUIDs, for lookup.
    #[serde(default)]
    pub id_pattern: Option<String>,
    /// Approvals each action needs, by mutation name; 1 for those not named.
    #[serde(default)]
    pub approvals: std::collections::BTreeMap<String, u32>,
    /// Most entities one call names, by mutation name (`actions.chunk_size` for those not
    /// named); 1 makes one call per entity, for a service that works best that way.
    #[serde(default)]
    pub chunk_size: std::collections::BTreeMap<String, u32>,
    /// This service's own figures for the watches, over `[watches]`.
    #[serde(default)]
    pub watches: WatchTuning,
    /// The most its actions send a second, unless an action has a pace of its own
    /// (`entities_per_second`, `calls_per_second`); no limit when left out.
    #[serde(default)]
    pub pace: runboard_model::Pace,
}

impl ServiceConfig {
    /// Checks what types alone cannot; `tokens_configured` says whether
    /// `[mission_control_tokens]` is there for a `token_audience`. The problem names the
    /// field, so that the config file and the cluster's annotations can each say where.
    pub fn check(&self, tokens_configured: bool) -> Result<(), ServiceConfigProblem> {
        fn problem(field: impl Into<String>, message: String) -> Result<(), ServiceConfigProblem> {
            Err(ServiceConfigProblem {
                field: field.into(),
                message,
            })
        }
        if self.team.trim().is_empty() {
            return problem("team", "must name the owning team".into());
        }
        if !matches!(self.graphql_url.scheme(), "http" | "https") {
            return problem(
                "graphql_url",
                format!("expected an http(s) URL, got {}", self.graphql_url),
            );
        }
        if !self.graphql_url.username().is_empty() || self.graphql_url.password().is_some() {
            return problem(
                "graphql_url",
                "must not carry a user name or password (every preview shows this URL); give Runboard's token as graphql_token instead".into(),
            );
        }
        if self.database_url.expose_secret().trim().is_empty() {
            return problem("database_url", "must not be empty".into());
        }
        if let Some(audience) = &self.token_audience {
            if audience.trim().is_empty() {
                return problem("token_audience", "must not be empty".into());
            }
            if self.graphql_token.is_some() {
                return problem(
                    "token_audience",
                    "and graphql_token are two ways to call the service; give one".into(),
                );
            }
            if !tokens_configured {
                return problem(
                    "token_audience",
                    "needs [mission_control_tokens] (token_url, client_id, client_secret): Runboard gets the service's tokens with that client".into(),
                );
            }
        }
        if self.stuck_after.is_some_and(|d| d.is_zero()) {
            return problem("stuck_after", "must be longer than 0s".into());
        }
        if let Some((field, message)) = self.watches.problem() {
            return problem(format!("watches.{field}"), message);
        }
        if self.query_timeout.is_zero() || self.max_connections == 0 || self.row_limit == 0 {
            return problem(
                "query_timeout, max_connections, row_limit",
                "must each be above zero".into(),
            );
        }
        if let Some((mutation, _)) = self.approvals.iter().find(|(_, n)| **n == 0) {
            return problem(
                format!("approvals.{mutation}"),
                "must be at least 1: every action needs someone other than its requester to approve it".into(),
            );
        }
        if let Some((mutation, _)) = self.chunk_size.iter().find(|(_, n)| **n == 0) {
            return problem(
                format!("chunk_size.{mutation}"),
                "must be at least 1 (1 is one call per entity)".into(),
            );
        }
        if let Some(message) = self.pace.problem() {
            return problem("pace", message);
        }
        if let Some(pattern) = &self.id_pattern
            && let Err(e) = regex::Regex::new(pattern)
        {
            return problem(
                "id_pattern",
                format!("is not a valid regular expression: {e}"),
            );
        }
        let queries = &self.queries;
        // Parsed as the service's own database reads SQL.
        let dialect = Dialect::of_url(self.database_url.expose_secret());
        for (field, query) in [
            ("supervisor_view", Some(&queries.supervisor_view)),
            ("batch_run", Some(&queries.batch_run)),
            ("batch_item", Some(&queries.batch_item)),
            ("withheld_funds", queries.withheld_funds.as_ref()),
            ("saga_events", queries.saga_events.as_ref()),
            ("entity_facts", queries.entity_facts.as_ref()),
        ] {
            if let Some(refusal) = query.and_then(|query| super::queries::refusal(query, dialect)) {
                return problem(format!("queries.{field}"), refusal);
            }
        }
        Ok(())
    }

    /// A service with the contract's default queries and read limits, as a config entry would give it.
    pub fn new(name: ServiceName, team: String, database_url: String, graphql_url: Url) -> Self {
        Self {
            name,
            team,
            database_url: database_url.into(),
            graphql_url,
            graphql_token: None,
            token_audience: None,
            stuck_after: None,
            queries: ContractQueries::default(),
            query_timeout: default_query_timeout(),
            max_connections: default_service_connections(),
            row_limit: default_row_limit(),
            id_pattern: None,
            approvals: Default::default(),
            chunk_size: Default::default(),
            watches: WatchTuning::default(),
            pace: Default::default(),
        }
    }
}

fn default_query_timeout() -> Duration {
    Duration::from_secs(5)
}

fn default_service_connections() -> u32 {
    4
}

fn default_row_limit() -> u32 {
    200_000
}

/// What is wrong with one service's settings, and in which field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceConfigProblem {
    pub field: String,
    pub message: String,
}

/// The SELECTs that produce the contract's relations (SPEC.md, "The service contract").
/// Each must return the contract's columns by name; Runboard wraps it as a subquery.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ContractQueries {
    pub supervisor_view: String,
    pub batch_run: String,
    pub batch_item: String,
    /// `(saga_id, amount, currency)` of the failed and stuck sagas; absent where a service holds no money.
    pub withheld_funds: Option<String>,
    /// `(saga_id, at, kind, detail)` for each event of a saga, where the service keeps its history.
    pub saga_events: Option<String>,
    /// `(saga_id, name, value)`, one row per fact the service keeps about a saga (its
    /// accounts, its reference), all text; absent where it offers none.
    pub entity_facts: Option<String>,
}

impl Default for ContractQueries {
    fn default() -> Self {
        Self {
            supervisor_view: "SELECT saga_id, saga_type, current_step, completed, error_message, created_at, updated_at FROM supervisor_view".into(),
            batch_run: "SELECT batch_id, name, started_at, finished_at FROM batch_run".into(),
            batch_item: "SELECT batch_id, item_id, status, error, updated_at FROM batch_item".into(),
            withheld_funds: None,
            saga_events: None,
            entity_facts: None,
        }
    }
}

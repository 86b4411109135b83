//! The one TOML configuration file, its environment overrides and its validation.
//!
//! Parsing rejects unknown keys and wrong types (the error names the key and its line);
//! [`Config::validate`] then checks what types alone cannot (unique names, URL schemes).

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use runboard_model::ServiceName;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use url::Url;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub http: HttpConfig,
    #[serde(default)]
    pub store: StoreConfig,
    #[serde(default)]
    pub thresholds: Thresholds,
    #[serde(default)]
    pub poller: PollerConfig,
    #[serde(default)]
    pub identity: IdentityConfig,
    #[serde(default)]
    pub actions: ActionsConfig,
    #[serde(default)]
    pub limits: LimitsConfig,
    #[serde(default)]
    pub watches: WatchesConfig,
    /// Runboard's own OAuth2 client, for services whose mission control takes the
    /// provider's tokens (those with a `token_audience`).
    #[serde(default)]
    pub mission_control_tokens: Option<MissionControlTokens>,
    /// Services found in the cluster, beside those written here.
    #[serde(default)]
    pub kubernetes: KubernetesConfig,
    #[serde(default)]
    pub services: Vec<ServiceConfig>,
}

/// Discovery of services in Kubernetes: Services labelled `runboard.io/service` become
/// registered services, described by their annotations.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KubernetesConfig {
    /// Off unless asked for: a Runboard outside a cluster has no API server to ask.
    #[serde(default)]
    pub discover: bool,
    /// The namespaces to watch; none watches every namespace the service account may read.
    #[serde(default)]
    pub namespaces: Vec<String>,
    /// The kubeconfig context to use outside a cluster (its current context otherwise).
    #[serde(default)]
    pub context: Option<String>,
    /// How the services found are reached.
    #[serde(default)]
    pub reach: Reach,
}

/// How Runboard reaches the databases and mission controls of the services it finds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reach {
    /// From a pod: at the Services' cluster DNS names.
    #[default]
    InCluster,
    /// From an engineer's laptop: through the API server's port-forward to a ready pod
    /// behind each Service, bridged to a loopback port.
    PortForward,
}

/// Runboard's client at the OpenID provider for its own access tokens (the
/// client-credentials grant), one per service audience.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MissionControlTokens {
    /// The provider's token endpoint.
    pub token_url: Url,
    pub client_id: String,
    /// Also from the environment, `RUNBOARD_MISSION_CONTROL_CLIENT_SECRET`.
    #[serde(default)]
    pub client_secret: Option<SecretString>,
}

/// Paces that keep one person, one script or one stranger from starving everyone else,
/// and the services behind Runboard, during an incident.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Requests a second one signed-in person (or one address not signed in) may send,
    /// sustained; probes and the site's static files are not counted.
    pub per_person_per_second: u32,
    /// Requests beyond that pace one may send at once, as a page load with its data does.
    pub per_person_burst: u32,
    /// Sign-in requests a minute from one client address (each costs a round trip to the
    /// provider, and a completed one a session row).
    pub sign_in_per_minute: u32,
    /// Refused bearer tokens a minute from one client address, so that guessing is slow.
    pub refused_tokens_per_minute: u32,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            per_person_per_second: 50,
            per_person_burst: 200,
            sign_in_per_minute: 30,
            refused_tokens_per_minute: 10,
        }
    }
}

/// How corrective actions are approved and executed.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ActionsConfig {
    /// A preview not approved within this long expires and must be made again.
    #[serde(with = "humantime_serde")]
    pub preview_ttl: Duration,
    /// Calls Runboard has in flight at once to one service for one action.
    pub concurrency: u32,
    /// Most entities one call names, where the mutation takes a list of them (see
    /// `services.chunk_size` for one mutation).
    pub chunk_size: u32,
    /// Longest the dry run of a preview may take in all; a preview that runs out says how
    /// far it got. Below `http.request_timeout`, so that the person asking hears why.
    #[serde(with = "humantime_serde")]
    pub dry_run_time_limit: Duration,
    /// An action pauses once this share of its entities failed (after `pause_after_calls`).
    pub pause_failure_share: f64,
    /// Entities with a result before the failure share is judged, so that one early failure
    /// does not pause.
    pub pause_after_calls: u32,
    /// How long a replica's claim on an executing action lasts unless renewed (a heartbeat
    /// renews it four times as often); another replica takes over once it has run out.
    #[serde(with = "humantime_serde")]
    pub lease: Duration,
    /// One more approval is needed when an action moves more than this much of a
    /// currency: `{ EUR = "10000" }`.
    pub extra_approval_above: std::collections::BTreeMap<String, rust_decimal::Decimal>,
    /// A Slack-compatible incoming webhook told when actions await approval, are approved,
    /// finish, fail or pause.
    pub webhook_url: Option<Url>,
}

impl Default for ActionsConfig {
    fn default() -> Self {
        Self {
            preview_ttl: Duration::from_secs(24 * 3600),
            concurrency: 4,
            chunk_size: 1000,
            dry_run_time_limit: Duration::from_secs(50),
            pause_failure_share: 0.5,
            pause_after_calls: 10,
            lease: Duration::from_secs(15),
            extra_approval_above: Default::default(),
            webhook_url: None,
        }
    }
}

/// Who may sign in and what their provider groups let them do (SPEC.md, "Roles").
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IdentityConfig {
    /// The OpenID provider people sign in with.
    pub oidc: Option<OidcConfig>,
    /// The provider groups that give each role; a person with none of them is turned away.
    pub roles: RoleGroups,
    /// One-click sign-in as the demo users: the embedded default on loopback only.
    pub demo_users: bool,
    pub sessions: SessionConfig,
    /// A signed-in person's roles are asked of the provider again at least this often
    /// (with its refresh token; a session without one ends then, and they sign in again).
    #[serde(with = "humantime_serde")]
    pub roles_ttl: Option<Duration>,
    /// Longest a personal API token may live.
    #[serde(with = "humantime_serde")]
    pub api_token_max_lifetime: Option<Duration>,
}

impl IdentityConfig {
    /// How often a session's roles are renewed from the provider: every hour unless configured.
    pub fn roles_ttl(&self) -> Duration {
        self.roles_ttl.unwrap_or(Duration::from_secs(3600))
    }

    /// The longest lifetime a personal API token may be given: 90 days unless configured.
    pub fn api_token_max_lifetime(&self) -> Duration {
        self.api_token_max_lifetime
            .unwrap_or(Duration::from_secs(90 * 24 * 3600))
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcConfig {
    /// The provider's issuer, exactly as its tokens' `iss` says it (a trailing `/` counts);
    /// its `/.well-known/openid-configuration` is read from there.
    pub issuer: String,
    pub client_id: String,
    /// Best given as RUNBOARD_OIDC_CLIENT_SECRET rather than in the file.
    #[serde(default)]
    pub client_secret: Option<SecretString>,
    /// Scopes asked for at sign-in; `openid` is always asked for.
    #[serde(default = "default_scopes")]
    pub scopes: Vec<String>,
    /// The ID and access token claim that lists the person's groups.
    #[serde(default = "default_groups_claim")]
    pub groups_claim: String,
    /// The claim that names a person the same in ID and access tokens: `sub` where the
    /// provider keeps one subject per person, `email` or `preferred_username` where it does
    /// not (Okta, Azure AD). With the issuer it is the person's key, which the rule that
    /// nobody approves their own action compares.
    #[serde(default = "default_person_claim")]
    pub person_claim: String,
    /// The audience of the provider's JWT access tokens that scripts may send as bearer
    /// tokens; when absent, only personal API tokens are accepted as bearer tokens.
    #[serde(default)]
    pub api_audience: Option<String>,
    /// The provider's name on the sign-in button.
    #[serde(default = "default_provider_name")]
    pub display_name: String,
}

fn default_scopes() -> Vec<String> {
    ["openid", "profile", "email", "groups"]
        .map(String::from)
        .to_vec()
}

fn default_person_claim() -> String {
    "sub".into()
}

fn default_groups_claim() -> String {
    "groups".into()
}

fn default_provider_name() -> String {
    "single sign-on".into()
}

/// For each role, the provider groups that give it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RoleGroups {
    pub viewer: Vec<String>,
    pub operator: Vec<String>,
    pub approver: Vec<String>,
    pub admin: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SessionConfig {
    /// A session unused for this long ends.
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// A session ends this long after sign-in, however busy.
    #[serde(with = "humantime_serde")]
    pub absolute_timeout: Duration,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            idle_timeout: Duration::from_secs(3600),
            absolute_timeout: Duration::from_secs(12 * 3600),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PollerConfig {
    /// How often each service's counts and funds are read into a snapshot.
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    /// Snapshots older than this are deleted; trends reach this far back.
    #[serde(with = "humantime_serde")]
    pub retention: Duration,
    /// How many services are read at once.
    pub concurrency: usize,
}

impl Default for PollerConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(15),
            retention: Duration::from_secs(7 * 24 * 3600),
            concurrency: 4,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Address the HTTP server binds.
    pub listen: SocketAddr,
    /// Directory holding the built site (`pkg/` with the wasm, js and css).
    pub site_root: PathBuf,
    /// A request still running after this long is answered with 408.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// Largest request body accepted, in bytes.
    pub body_limit_bytes: usize,
    /// The address people reach Runboard at, e.g. `https://runboard.example.com`: the OIDC
    /// redirect, the origin writes must come from, and `Secure` cookies when https.
    /// When absent, `http://` and the listen address.
    pub public_url: Option<Url>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 3000)),
            site_root: PathBuf::from("target/site"),
            // A preview of 100,000 entities takes most of half a minute on a small machine.
            request_timeout: Duration::from_secs(60),
            // A pasted list of 100,000 IDs (SPEC.md, "Actions") fits.
            body_limit_bytes: 8 * 1024 * 1024,
            public_url: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// `postgres://…` or `sqlite://…`; when absent, an SQLite file in `data_dir`. A secret:
    /// it may carry the store's password.
    pub url: Option<SecretString>,
    /// Where the embedded SQLite store (and the demo's files) live.
    pub data_dir: PathBuf,
    pub max_connections: u32,
    /// How long a request waits for a store connection before it fails.
    #[serde(with = "humantime_serde")]
    pub acquire_timeout: Duration,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            url: None,
            data_dir: PathBuf::from("runboard-data"),
            max_connections: 10,
            acquire_timeout: Duration::from_secs(5),
        }
    }
}

impl StoreConfig {
    /// The store's URL: the configured one, or the embedded SQLite file in `data_dir`.
    pub fn effective_url(&self) -> String {
        match &self.url {
            Some(url) => url.expose_secret().to_owned(),
            None => format!("sqlite://{}", self.data_dir.join("runboard.db").display()),
        }
    }
}

/// What Runboard watches in every poll, the figures every service starts from, and whom
/// it tells (SPEC.md has no word on watches; issue #15 asks for them).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WatchesConfig {
    /// *failures rising* fires above this many failed and stuck sagas together.
    pub failures_above: u64,
    /// ... or when they grew by more than this share over `window` (0.5: by half).
    pub failures_growth: f64,
    /// How far back *failures rising* looks for growth, and how long an error message must
    /// have been absent from failed sagas to be *new* when it appears.
    #[serde(with = "humantime_serde")]
    pub window: Duration,
    /// *stalled batch* fires for a batch with items pending and none finished for this long...
    #[serde(with = "humantime_serde")]
    pub stall_after: Duration,
    /// ... or whose failed items pass this share of those finished (0.1: one in ten), once
    /// at least 10 have finished. Batches that finished more than `window` ago are let be.
    pub batch_failed_share: f64,
    /// *money held* fires when withheld funds of a currency pass its figure here:
    /// `{ EUR = "50000" }`. A currency not named is not watched.
    pub money_held_above: std::collections::BTreeMap<String, rust_decimal::Decimal>,
    /// ... or when a saga has held money of a currency for longer than this; none: money is
    /// not watched by age.
    #[serde(with = "humantime_serde")]
    pub money_held_longer_than: Option<Duration>,
    /// *service unreachable* fires after this many failed polls in a row.
    pub unreachable_polls: u32,
    /// Watches turned off for every service: `["money_held"]`.
    pub off: Vec<runboard_model::Watch>,
    /// A firing alert nobody acknowledged is told once more after this long.
    #[serde(with = "humantime_serde")]
    pub repeat_after: Duration,
    /// Where each team hears of its services' alerts: `{ payments = { webhook_url = "…" } }`.
    /// A team not named here hears through `actions.webhook_url`.
    pub teams: std::collections::BTreeMap<String, TeamRoute>,
}

impl Default for WatchesConfig {
    fn default() -> Self {
        Self {
            failures_above: 1000,
            failures_growth: 0.5,
            window: Duration::from_secs(3600),
            stall_after: Duration::from_secs(15 * 60),
            batch_failed_share: 0.1,
            money_held_above: Default::default(),
            money_held_longer_than: None,
            unreachable_polls: 3,
            off: Vec::new(),
            repeat_after: Duration::from_secs(4 * 3600),
            teams: Default::default(),
        }
    }
}

/// Where one team hears of alerts.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TeamRoute {
    /// A Slack-compatible incoming webhook.
    pub webhook_url: Url,
}

/// One service's figures for the watches, each over `[watches]`'s where given.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WatchTuning {
    pub failures_above: Option<u64>,
    pub failures_growth: Option<f64>,
    #[serde(default, with = "humantime_serde")]
    pub stall_after: Option<Duration>,
    pub batch_failed_share: Option<f64>,
    pub money_held_above: Option<std::collections::BTreeMap<String, rust_decimal::Decimal>>,
    #[serde(default, with = "humantime_serde")]
    pub money_held_longer_than: Option<Duration>,
    pub unreachable_polls: Option<u32>,
    /// Watches turned off for this service, beside those `[watches]` turns off.
    #[serde(default)]
    pub off: Vec<runboard_model::Watch>,
}

impl WatchTuning {
    /// The figures given that no watch can work with, as `(field, what is wrong)`: the one
    /// check of `[watches]` and of every `[services.watches]`.
    pub fn problem(&self) -> Option<(&'static str, String)> {
        if let Some(growth) = self.failures_growth
            && (growth.is_nan() || growth <= 0.0)
        {
            return Some((
                "failures_growth",
                format!(
                    "expected a share above 0 (0.5 fires when failures grew by half), got {growth}"
                ),
            ));
        }
        if let Some(share) = self.batch_failed_share
            && !(share > 0.0 && share <= 1.0)
        {
            return Some((
                "batch_failed_share",
                format!(
                    "expected a share above 0 and at most 1 (0.1 fires when one finished item in ten failed), got {share}"
                ),
            ));
        }
        if self.stall_after.is_some_and(|d| d.is_zero()) {
            return Some((
                "stall_after",
                "must be longer than 0s (to turn the watch off, put \"stalled_batch\" in off)"
                    .into(),
            ));
        }
        if self.money_held_longer_than.is_some_and(|d| d.is_zero()) {
            return Some((
                "money_held_longer_than",
                "must be longer than 0s (leave it out not to watch money by age)".into(),
            ));
        }
        if self.unreachable_polls == Some(0) {
            return Some((
                "unreachable_polls",
                "expected 1 or more failed polls in a row (to turn the watch off, put \"service_unreachable\" in off)".into(),
            ));
        }
        None
    }
}

impl WatchesConfig {
    /// `[watches]`'s figures as a tuning that gives every one.
    fn as_tuning(&self) -> WatchTuning {
        WatchTuning {
            failures_above: Some(self.failures_above),
            failures_growth: Some(self.failures_growth),
            stall_after: Some(self.stall_after),
            batch_failed_share: Some(self.batch_failed_share),
            money_held_above: Some(self.money_held_above.clone()),
            money_held_longer_than: self.money_held_longer_than,
            unreachable_polls: Some(self.unreachable_polls),
            off: self.off.clone(),
        }
    }
}

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
    pub database_url: SecretString,
    /// The service's mission-control GraphQL endpoint; never with credentials in it (they
    /// would be shown in every preview), which go in `graphql_token`.
    pub graphql_url: Url,
    /// Runboard's bearer token for that endpoint, where the service asks for one.
    #[serde(default)]
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
        if let Some(pattern) = &self.id_pattern
            && let Err(e) = regex::Regex::new(pattern)
        {
            return problem(
                "id_pattern",
                format!("is not a valid regular expression: {e}"),
            );
        }
        let queries = &self.queries;
        for (field, query) in [
            ("supervisor_view", Some(&queries.supervisor_view)),
            ("batch_run", Some(&queries.batch_run)),
            ("batch_item", Some(&queries.batch_item)),
            ("withheld_funds", queries.withheld_funds.as_ref()),
            ("saga_events", queries.saga_events.as_ref()),
        ] {
            if let Some(query) = query
                && !query
                    .trim_start()
                    .to_ascii_lowercase()
                    .starts_with("select")
            {
                return problem(
                    format!("queries.{field}"),
                    "must be a single SELECT returning the contract's columns".into(),
                );
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
}

impl Default for ContractQueries {
    fn default() -> Self {
        Self {
            supervisor_view: "SELECT saga_id, saga_type, current_step, completed, error_message, created_at, updated_at FROM supervisor_view".into(),
            batch_run: "SELECT batch_id, name, started_at, finished_at FROM batch_run".into(),
            batch_item: "SELECT batch_id, item_id, status, error, updated_at FROM batch_item".into(),
            withheld_funds: None,
            saga_events: None,
        }
    }
}

/// Values from the command line or the environment that win over the file.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub listen: Option<SocketAddr>,
    pub database_url: Option<SecretString>,
    pub data_dir: Option<PathBuf>,
    pub site_root: Option<PathBuf>,
    pub oidc_client_secret: Option<SecretString>,
    pub mission_control_client_secret: Option<SecretString>,
    /// A kubeconfig context to discover services in and reach them by port-forward, as an
    /// engineer does from a laptop.
    pub kube_context: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a valid Runboard config: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("config key `{key}`: {message}")]
    Invalid { key: String, message: String },
}

impl Config {
    /// Reads, parses and validates the file, with `overrides` applied before validation.
    pub fn load(path: &Path, overrides: &Overrides) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, path, overrides)
    }

    /// As [`Config::load`], from text already read; `origin` names it in errors.
    pub fn parse(text: &str, origin: &Path, overrides: &Overrides) -> Result<Self, ConfigError> {
        let mut config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: origin.to_owned(),
            message: e.to_string(),
        })?;
        config.apply(overrides);
        config.validate()?;
        Ok(config)
    }

    /// The embedded default: an SQLite store in `data_dir`, served on `listen`.
    pub fn demo(overrides: &Overrides) -> Result<Self, ConfigError> {
        let mut config = Config {
            http: HttpConfig::default(),
            store: StoreConfig::default(),
            thresholds: Thresholds::default(),
            poller: PollerConfig::default(),
            actions: ActionsConfig::default(),
            // Every demo client comes from loopback: one address for all, so sign-ins are
            // not counted per address there.
            limits: LimitsConfig {
                sign_in_per_minute: 10_000,
                ..LimitsConfig::default()
            },
            identity: IdentityConfig {
                demo_users: true,
                ..IdentityConfig::default()
            },
            // Any money the demo fleet's payments holds is worth an alert there, so that the
            // Alerts screen shows what it does from the first poll.
            watches: WatchesConfig {
                money_held_above: ["EUR", "USD", "GBP", "CHF"]
                    .into_iter()
                    .map(|currency| (currency.to_owned(), rust_decimal::Decimal::ZERO))
                    .collect(),
                ..WatchesConfig::default()
            },
            mission_control_tokens: None,
            kubernetes: KubernetesConfig::default(),
            services: Vec::new(),
        };
        config.apply(overrides);
        config.validate()?;
        Ok(config)
    }

    fn apply(&mut self, overrides: &Overrides) {
        if let Some(listen) = overrides.listen {
            self.http.listen = listen;
        }
        if let Some(url) = &overrides.database_url {
            self.store.url = Some(url.clone());
        }
        if let Some(dir) = &overrides.data_dir {
            self.store.data_dir = dir.clone();
        }
        if let Some(root) = &overrides.site_root {
            self.http.site_root = root.clone();
        }
        if let (Some(oidc), Some(secret)) = (&mut self.identity.oidc, &overrides.oidc_client_secret)
        {
            oidc.client_secret = Some(secret.clone());
        }
        if let (Some(client), Some(secret)) = (
            &mut self.mission_control_tokens,
            &overrides.mission_control_client_secret,
        ) {
            client.client_secret = Some(secret.clone());
        }
        if let Some(context) = &overrides.kube_context {
            self.kubernetes = KubernetesConfig {
                discover: true,
                context: Some(context.clone()),
                reach: Reach::PortForward,
                ..self.kubernetes.clone()
            };
        }
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key: String, message: String| Err(ConfigError::Invalid { key, message });
        if let Some(url) = self.store.url.as_ref().map(ExposeSecret::expose_secret)
            && !(url.starts_with("postgres://")
                || url.starts_with("postgresql://")
                || url.starts_with("sqlite:"))
        {
            return invalid(
                "store.url".into(),
                "expected a postgres://… or sqlite://… URL (or leave it out for an SQLite file in store.data_dir)".into(),
            );
        }
        if let Some((field, message)) = self.watches.as_tuning().problem() {
            return invalid(format!("watches.{field}"), message);
        }
        if let Some(client) = &self.mission_control_tokens {
            if !matches!(client.token_url.scheme(), "http" | "https") {
                return invalid(
                    "mission_control_tokens.token_url".into(),
                    format!(
                        "expected the provider's http(s) token endpoint, got {}",
                        client.token_url
                    ),
                );
            }
            if client.client_id.trim().is_empty() {
                return invalid(
                    "mission_control_tokens.client_id".into(),
                    "must not be empty".into(),
                );
            }
            if client.client_secret.is_none() {
                return invalid(
                    "mission_control_tokens.client_secret".into(),
                    "is needed; give it here or in RUNBOARD_MISSION_CONTROL_CLIENT_SECRET".into(),
                );
            }
        }
        let limits = &self.limits;
        if [
            limits.per_person_per_second,
            limits.per_person_burst,
            limits.sign_in_per_minute,
            limits.refused_tokens_per_minute,
        ]
        .contains(&0)
        {
            return invalid(
                "limits".into(),
                "every limit must be at least 1 (raise it rather than turning it off)".into(),
            );
        }
        if self.store.max_connections == 0 {
            return invalid("store.max_connections".into(), "must be at least 1".into());
        }
        if self.http.request_timeout.is_zero() {
            return invalid(
                "http.request_timeout".into(),
                "must be longer than 0s, e.g. \"30s\"".into(),
            );
        }
        if self.poller.interval.is_zero() || self.poller.concurrency == 0 {
            return invalid(
                "poller".into(),
                "interval must be longer than 0s and concurrency at least 1".into(),
            );
        }
        self.validate_identity()?;
        let actions = &self.actions;
        if actions.preview_ttl.is_zero()
            || actions.concurrency == 0
            || actions.chunk_size == 0
            || actions.dry_run_time_limit.is_zero()
            || !(0.0..=1.0).contains(&actions.pause_failure_share)
        {
            return invalid(
                "actions".into(),
                "preview_ttl and dry_run_time_limit must be above 0s, concurrency and chunk_size at least 1 and pause_failure_share between 0 and 1".into(),
            );
        }
        if actions.dry_run_time_limit >= self.http.request_timeout {
            return invalid(
                "actions.dry_run_time_limit".into(),
                format!(
                    "must be shorter than http.request_timeout ({}), so that a preview that runs out of time can say how far it got",
                    humantime::format_duration(self.http.request_timeout)
                ),
            );
        }
        let mut seen = HashSet::new();
        for (i, service) in self.services.iter().enumerate() {
            let key = |field: &str| format!("services[{i}].{field} (service {})", service.name);
            if !seen.insert(&service.name) {
                return invalid(
                    key("name"),
                    "another service already has this name; names must be unique".into(),
                );
            }
            if let Err(problem) = service.check(self.mission_control_tokens.is_some()) {
                return invalid(key(&problem.field), problem.message);
            }
        }
        Ok(())
    }

    fn validate_identity(&self) -> Result<(), ConfigError> {
        let invalid = |key: &str, message: String| {
            Err(ConfigError::Invalid {
                key: key.into(),
                message,
            })
        };
        let identity = &self.identity;
        if identity.demo_users {
            if !self.http.listen.ip().is_loopback() {
                return invalid(
                    "identity.demo_users",
                    format!(
                        "demo users let anyone sign in with one click, so Runboard serves them on loopback only, and http.listen is {}; listen on 127.0.0.1 or [::1], or turn demo_users off and configure [identity.oidc]",
                        self.http.listen
                    ),
                );
            }
            if self
                .store
                .url
                .as_ref()
                .is_some_and(|u| !u.expose_secret().starts_with("sqlite:"))
            {
                return invalid(
                    "identity.demo_users",
                    "demo users belong to the embedded default (an SQLite store), never to a PostgreSQL store; turn demo_users off and configure [identity.oidc]".into(),
                );
            }
        }
        let sessions = &identity.sessions;
        if sessions.idle_timeout.is_zero() || sessions.absolute_timeout < sessions.idle_timeout {
            return invalid(
                "identity.sessions",
                "idle_timeout must be above 0s and absolute_timeout at least as long as idle_timeout".into(),
            );
        }
        if identity.api_token_max_lifetime.is_some_and(|d| d.is_zero()) {
            return invalid(
                "identity.api_token_max_lifetime",
                "must be longer than 0s".into(),
            );
        }
        if let Some(url) = &self.http.public_url
            && (!matches!(url.scheme(), "http" | "https") || url.path() != "/")
        {
            return invalid(
                "http.public_url",
                format!(
                    "expected the site's root as an http(s) URL with no path, such as https://runboard.example.com, got {url}"
                ),
            );
        }
        if let Some(oidc) = &identity.oidc {
            if oidc.client_id.trim().is_empty() {
                return invalid("identity.oidc.client_id", "must not be empty".into());
            }
            if !Url::parse(&oidc.issuer).is_ok_and(|u| matches!(u.scheme(), "http" | "https")) {
                return invalid(
                    "identity.oidc.issuer",
                    format!("expected an http(s) URL, got {}", oidc.issuer),
                );
            }
            if self.http.public_url.is_none() && !self.http.listen.ip().is_loopback() {
                return invalid(
                    "http.public_url",
                    "is needed with [identity.oidc]: the provider sends people back to <public_url>/auth/callback".into(),
                );
            }
        }
        Ok(())
    }

    /// The origin people reach Runboard at: `http.public_url`, or http and the listen address.
    pub fn public_url(&self) -> Url {
        self.http.public_url.clone().unwrap_or_else(|| {
            Url::parse(&format!("http://{}/", self.http.listen))
                .expect("a socket address makes a URL")
        })
    }

    /// The stuck threshold of one service, falling back to the global one.
    pub fn stuck_after(&self, service: &ServiceConfig) -> Duration {
        service.stuck_after.unwrap_or(self.thresholds.stuck_after)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("runboard.toml"), &Overrides::default())
    }

    #[test]
    fn a_kube_context_on_the_command_line_discovers_and_reaches_by_port_forward() {
        let file = "[kubernetes]\nnamespaces = [\"payments\"]\n";
        let config = parse(file).unwrap();
        assert!(!config.kubernetes.discover);
        assert_eq!(config.kubernetes.reach, Reach::InCluster);
        let overrides = Overrides {
            kube_context: Some("prod-eu".into()),
            ..Overrides::default()
        };
        let laptop = Config::parse(file, Path::new("runboard.toml"), &overrides).unwrap();
        assert!(laptop.kubernetes.discover);
        assert_eq!(laptop.kubernetes.reach, Reach::PortForward);
        assert_eq!(laptop.kubernetes.context.as_deref(), Some("prod-eu"));
        assert_eq!(laptop.kubernetes.namespaces, ["payments"]);
        let wrong = parse("[kubernetes]\nreach = \"tunnel\"\n")
            .err()
            .unwrap()
            .to_string();
        assert!(
            wrong.contains("in-cluster") && wrong.contains("port-forward"),
            "{wrong}"
        );
    }

    const TWO_SERVICES: &str = r#"
        [store]
        url = "postgres://runboard@db/runboard"

        [[services]]
        name = "payments"
        team = "payments"
        database_url = "postgres://ro@payments-db/payments"
        graphql_url = "http://payments:8080/graphql"
        stuck_after = "10m"

        [[services]]
        name = "ledger"
        team = "core"
        database_url = "postgres://ro@ledger-db/ledger"
        graphql_url = "http://ledger:8080/graphql"
    "#;

    #[test]
    fn parses_a_full_file_with_defaults_filled_in() {
        let config = parse(TWO_SERVICES).unwrap();
        assert_eq!(config.services.len(), 2);
        assert_eq!(
            config.stuck_after(&config.services[0]),
            Duration::from_secs(600)
        );
        assert_eq!(
            config.stuck_after(&config.services[1]),
            Duration::from_secs(1800)
        );
        assert_eq!(config.http.listen.to_string(), "127.0.0.1:3000");
    }

    #[test]
    fn the_documented_example_config_is_valid() {
        let path = Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../runboard.example.toml"
        ));
        let config = Config::load(path, &Overrides::default()).unwrap();
        assert_eq!(config.services.len(), 2);
    }

    #[test]
    fn the_clusters_configs_are_valid() {
        for file in ["base", "overlays/oidc-ingress"] {
            let path = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../deploy")
                .join(file)
                .join("runboard.toml");
            let config = Config::load(&path, &Overrides::default())
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert!(config.identity.oidc.is_some(), "{}", path.display());
            assert_eq!(
                config.http.listen.port(),
                3000,
                "the port the Deployment probes"
            );
        }
    }

    #[test]
    fn an_unknown_key_is_named() {
        let err = parse("[store]\nurll = \"sqlite://x.db\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field `urll`"), "{err}");
        assert!(err.contains("runboard.toml"), "{err}");
    }

    #[test]
    fn a_wrong_type_names_the_key_line_and_expectation() {
        let err = parse("[http]\nrequest_timeout = 30\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("request_timeout"), "{err}");
        assert!(err.contains("line 2"), "{err}");
    }

    #[test]
    fn a_bad_service_name_says_what_names_may_be() {
        let err = parse(&TWO_SERVICES.replace("\"ledger\"", "\"Ledger\"")).unwrap_err();
        assert!(
            err.to_string().contains("not a valid service name"),
            "{err}"
        );
    }

    #[test]
    fn duplicate_service_names_are_refused_with_the_key() {
        let err = parse(&TWO_SERVICES.replace("\"ledger\"", "\"payments\"")).unwrap_err();
        assert!(err.to_string().contains("services[1].name"), "{err}");
    }

    #[test]
    fn watch_figures_no_watch_can_use_are_refused_alike_everywhere_and_a_service_is_named() {
        for (figure, says) in [
            ("failures_growth = 0.0", "watches.failures_growth"),
            ("batch_failed_share = 1.5", "watches.batch_failed_share"),
            ("stall_after = \"0s\"", "watches.stall_after"),
            ("unreachable_polls = 0", "watches.unreachable_polls"),
        ] {
            let everywhere = parse(&format!("[watches]\n{figure}\n{TWO_SERVICES}"))
                .unwrap_err()
                .to_string();
            assert!(everywhere.contains(says), "{figure}: {everywhere}");
            let for_ledger = parse(&format!("{TWO_SERVICES}\n[services.watches]\n{figure}\n"))
                .unwrap_err()
                .to_string();
            assert!(
                for_ledger.contains(&format!("services[1].{says} (service ledger)")),
                "{figure}: {for_ledger}"
            );
        }
        let tuned = parse(&format!(
            "{TWO_SERVICES}\n[services.watches]\nstall_after = \"2m\"\nbatch_failed_share = 0.3\n"
        ))
        .unwrap();
        let ledger = &tuned.services[1].watches;
        assert_eq!(ledger.stall_after, Some(Duration::from_secs(120)));
        assert_eq!(ledger.batch_failed_share, Some(0.3));
    }

    #[test]
    fn a_non_http_graphql_url_is_refused_with_the_service() {
        let err = parse(&TWO_SERVICES.replace("http://ledger", "ftp://ledger")).unwrap_err();
        let err = err.to_string();
        assert!(
            err.contains("services[1].graphql_url (service ledger)"),
            "{err}"
        );
    }

    #[test]
    fn a_graphql_url_with_credentials_is_refused_because_previews_show_it() {
        let err = parse(&TWO_SERVICES.replace("http://ledger", "http://runboard:s3cret@ledger"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("services[1].graphql_url (service ledger)")
                && err.contains("graphql_token"),
            "{err}"
        );
        assert!(
            !err.contains("s3cret"),
            "the error does not repeat the password: {err}"
        );
    }

    #[test]
    fn secrets_in_the_config_are_redacted_wherever_it_is_printed() {
        let file = format!(
            "{}\ngraphql_token = \"token-s3cret\"\n\n[identity.oidc]\nissuer = \"https://idp.example\"\nclient_id = \"runboard\"\nclient_secret = \"client-s3cret\"\n",
            TWO_SERVICES
                .replace("runboard@db", "runboard:store-s3cret@db")
                .replace("ro@ledger-db", "ro:db-s3cret@ledger-db")
        );
        let config = parse(&file).unwrap();
        let printed = format!("{config:?}");
        for secret in ["token-s3cret", "client-s3cret", "store-s3cret", "db-s3cret"] {
            assert!(!printed.contains(secret), "{secret} is printed: {printed}");
        }
        assert!(printed.contains("REDACTED"), "{printed}");
    }

    #[test]
    fn a_token_audience_needs_runboards_client_and_excludes_a_static_token() {
        let with_audience = TWO_SERVICES.replace(
            "graphql_url = \"http://ledger:8080/graphql\"",
            "graphql_url = \"http://ledger:8080/graphql\"\ntoken_audience = \"urn:ledger\"",
        );
        let err = parse(&with_audience).unwrap_err().to_string();
        assert!(
            err.contains("services[1].token_audience (service ledger)")
                && err.contains("[mission_control_tokens]"),
            "{err}"
        );
        let client = "\n[mission_control_tokens]\ntoken_url = \"https://idp.example/token\"\nclient_id = \"runboard-engine\"\n";
        let err = parse(&format!("{client}{with_audience}"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("RUNBOARD_MISSION_CONTROL_CLIENT_SECRET"),
            "{err}"
        );
        let overrides = Overrides {
            mission_control_client_secret: Some("engine-s3cret".into()),
            ..Overrides::default()
        };
        let config = Config::parse(
            &format!("{client}{with_audience}"),
            Path::new("runboard.toml"),
            &overrides,
        )
        .unwrap();
        assert_eq!(
            config.services[1].token_audience.as_deref(),
            Some("urn:ledger")
        );
        let both = with_audience.replace(
            "token_audience = \"urn:ledger\"",
            "token_audience = \"urn:ledger\"\ngraphql_token = \"t\"",
        );
        let err = parse(&format!("{client}client_secret = \"s\"\n{both}"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("give one"), "{err}");
    }

    #[test]
    fn a_store_url_of_an_unknown_kind_is_refused() {
        let err = parse("[store]\nurl = \"mysql://x\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("store.url"), "{err}");
    }

    #[test]
    fn overrides_win_over_the_file() {
        let overrides = Overrides {
            listen: Some("127.0.0.1:4000".parse().unwrap()),
            database_url: Some("sqlite://override.db".into()),
            ..Overrides::default()
        };
        let config = Config::parse(TWO_SERVICES, Path::new("x.toml"), &overrides).unwrap();
        assert_eq!(config.http.listen.port(), 4000);
        assert_eq!(config.store.effective_url(), "sqlite://override.db");
    }

    #[test]
    fn without_a_store_url_the_store_is_sqlite_in_the_data_dir() {
        let overrides = Overrides {
            data_dir: Some(PathBuf::from("/var/lib/runboard")),
            ..Overrides::default()
        };
        let config = Config::demo(&overrides).unwrap();
        assert_eq!(
            config.store.effective_url(),
            "sqlite:///var/lib/runboard/runboard.db"
        );
    }

    #[test]
    fn the_demo_refuses_to_listen_beyond_loopback() {
        let overrides = Overrides {
            listen: Some("0.0.0.0:3000".parse().unwrap()),
            ..Overrides::default()
        };
        let err = Config::demo(&overrides).unwrap_err().to_string();
        assert!(err.contains("loopback"), "{err}");
    }
}

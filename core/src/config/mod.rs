//! The one TOML configuration file, its environment overrides and its validation.
//!
//! Parsing rejects unknown keys and wrong types (the error names the key and its line);
//! [`Config::validate`] then checks what types alone cannot (unique names, URL schemes).

mod identity;
mod kubernetes;
mod queries;
mod secret;
mod services;
mod watches;

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use url::Url;

pub use identity::{IdentityConfig, OidcConfig, RoleGroups, SessionConfig};
pub use kubernetes::{KubernetesConfig, KubernetesPolicy, NamespacePolicy, Reach};
pub use secret::SecretUrl;
pub use services::{ContractQueries, ServiceConfig, ServiceConfigProblem, Thresholds};
pub use watches::{TeamRoute, WatchTuning, WatchesConfig};

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

/// Runboard's client at the OpenID provider for its own access tokens (the
/// client-credentials grant), one per service audience.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MissionControlTokens {
    /// The provider's token endpoint.
    pub token_url: Url,
    pub client_id: String,
    /// Also from the environment, `RUNBOARD_MISSION_CONTROL_CLIENT_SECRET`.
    #[serde(default, deserialize_with = "secret::optional")]
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
    /// Most steps one runbook may have; its steps times its entities stay within the most
    /// calls one action makes, too.
    pub max_steps: u32,
    /// A Slack-compatible incoming webhook told when actions await approval, are approved,
    /// finish, fail or pause. A secret: whoever has it can post to the channel.
    pub webhook_url: Option<SecretUrl>,
    /// Entities the first real call of an action names, the canary: nothing else is sent
    /// until its result is in, and the calls after it double up to `chunk_size`. 0: no canary.
    pub canary_entities: u32,
    /// A call's answer slower than this (or a timeout, or a 5xx) counts against the service's
    /// health: when most recent answers do, the engine halves the calls it has in flight.
    #[serde(with = "humantime_serde")]
    pub brake_latency: Duration,
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
            max_steps: 20,
            webhook_url: None,
            canary_entities: 10,
            brake_latency: Duration::from_secs(5),
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
    /// After SIGTERM, how long Runboard keeps serving while `/readyz` answers 503, so that
    /// load balancers (Kubernetes' endpoints) stop sending before the listener closes.
    #[serde(with = "humantime_serde")]
    pub drain: Duration,
    /// When set, `/metrics` is served on this address only, not on `listen`, so that
    /// whatever reaches the pages (an Ingress) cannot reach the metrics.
    pub metrics_listen: Option<SocketAddr>,
    /// The reverse proxies in front of Runboard (an ingress, a load balancer), as address
    /// ranges (`10.0.0.0/8`, `fd00::/8`) or addresses: for a request from one of them, the
    /// client is the address its [`forwarded_header`](Self::forwarded_header) names, for the
    /// limits per address and the logs. Any other peer's such headers are ignored.
    #[serde(deserialize_with = "address_ranges")]
    pub trusted_proxies: Vec<IpNet>,
    /// The header those proxies write. Only that one is read: the other passes through
    /// them as the client wrote it, so it could name anyone.
    pub forwarded_header: ForwardedHeader,
}

/// The header a reverse proxy names the client in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ForwardedHeader {
    /// `X-Forwarded-For: client, proxy1`, as most ingresses and load balancers write it.
    #[default]
    XForwardedFor,
    /// RFC 7239's `Forwarded: for=client, for=proxy1`.
    Forwarded,
}

/// `trusted_proxies`: each an address range (`10.0.0.0/8`) or one address (`10.1.2.3`).
fn address_ranges<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<IpNet>, D::Error> {
    Vec::<String>::deserialize(deserializer)?
        .iter()
        .map(|text| {
            text.parse::<IpNet>()
                .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| {
                    serde::de::Error::custom(format!(
                        "{text:?} is not an address range: write one as 10.0.0.0/8 or fd00::/8, or an address as 10.1.2.3"
                    ))
                })
        })
        .collect()
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
            // A few seconds: how long Kubernetes takes to drop a pod from its endpoints.
            drain: Duration::from_secs(5),
            metrics_listen: None,
            trusted_proxies: Vec::new(),
            forwarded_header: ForwardedHeader::default(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// `postgres://…` or `sqlite://…`; when absent, an SQLite file in `data_dir`. A secret:
    /// it may carry the store's password.
    #[serde(deserialize_with = "secret::optional")]
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
        let mut config = Config::deserialize(secret::Resolving(toml::Deserializer::new(text)))
            .map_err(|e| ConfigError::Parse {
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
            // One process on a laptop: no load balancer to drain from, Ctrl-C stops at once.
            http: HttpConfig {
                drain: Duration::ZERO,
                ..HttpConfig::default()
            },
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
        if self.kubernetes.resync.is_zero() {
            return invalid(
                "kubernetes.resync".into(),
                "must be longer than zero, such as \"30s\"".into(),
            );
        }
        let policies = &self.kubernetes.policy.namespace;
        if let Some((index, twice)) = policies
            .iter()
            .enumerate()
            .find(|(i, p)| policies[..*i].iter().any(|q| q.name == p.name))
        {
            return invalid(
                format!("kubernetes.policy.namespace[{index}]"),
                format!(
                    "namespace {} has a policy already; write one entry per namespace",
                    twice.name
                ),
            );
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
                    "is needed; give it as client_secret_file (a mounted Secret), client_secret_env or in RUNBOARD_MISSION_CONTROL_CLIENT_SECRET".into(),
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
            || actions.brake_latency.is_zero()
            || !(0.0..=1.0).contains(&actions.pause_failure_share)
        {
            return invalid(
                "actions".into(),
                "preview_ttl, dry_run_time_limit and brake_latency must be above 0s, concurrency and chunk_size at least 1 and pause_failure_share between 0 and 1".into(),
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
mod tests;

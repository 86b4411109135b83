//! Who may sign in, through which provider, and how long a session lasts.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use url::Url;

use super::{Config, ConfigError};

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
    /// A personal API token whose holder the provider has not shown Runboard for this long
    /// (they have not signed in, nor used a provider token) acts as a viewer until they do.
    #[serde(with = "humantime_serde")]
    pub token_roles_ttl: Option<Duration>,
}

impl IdentityConfig {
    /// How often a session's roles are renewed from the provider: every hour unless configured.
    pub fn roles_ttl(&self) -> Duration {
        self.roles_ttl.unwrap_or(Duration::from_secs(3600))
    }

    /// How long a token acts with its holder's roles as last seen: 7 days unless configured.
    pub fn token_roles_ttl(&self) -> Duration {
        self.token_roles_ttl
            .unwrap_or(Duration::from_secs(7 * 24 * 3600))
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
    /// Best given as `client_secret_file` (a mounted Secret) or RUNBOARD_OIDC_CLIENT_SECRET
    /// rather than in the file.
    #[serde(default, deserialize_with = "super::secret::optional")]
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
    /// The provider's public client (no secret) that `runboard login` signs in with, by the
    /// device authorization grant; its access tokens are checked as `api_audience`'s.
    #[serde(default)]
    pub cli_client_id: Option<String>,
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

impl Config {
    pub(super) fn validate_identity(&self) -> Result<(), ConfigError> {
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
            if oidc.cli_client_id.is_some() && oidc.api_audience.is_none() {
                return invalid(
                    "identity.oidc.cli_client_id",
                    "needs identity.oidc.api_audience too: the command line signs in with the provider's access tokens, which Runboard accepts only for that audience".into(),
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
}

//! How Runboard says who calls a service's mission control: nothing, a static token from
//! the config, or its own access token for the service's audience, got from the OpenID
//! provider with the OAuth2 client-credentials grant and kept until shortly before it
//! expires.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use oauth2::basic::BasicClient;
use oauth2::{ClientId, ClientSecret, EndpointNotSet, EndpointSet, TokenResponse, TokenUrl};
use secrecy::{ExposeSecret, SecretString};

use super::CallError;
use crate::config::MissionControlTokens;
use crate::error_text::{error_chain, shown_url};

/// How long a token is kept when the provider does not say when it expires.
const UNDATED_TOKEN_KEPT: Duration = Duration::from_secs(60);
/// A token is replaced this long before it expires (or a quarter of its life, if shorter),
/// so that no call carries one that expires on the way.
const RENEW_BEFORE_EXPIRY: Duration = Duration::from_secs(60);
/// Longest wait for the provider's token endpoint.
const TOKEN_TIMEOUT: Duration = Duration::from_secs(10);

/// The `Authorization` a service's calls carry.
#[derive(Clone, Default)]
pub enum Credentials {
    #[default]
    None,
    /// The service's static token (`graphql_token`).
    Static(SecretString),
    /// Runboard's own token for the service's audience (`token_audience`).
    Provider(Arc<AudienceTokens>),
}

impl Credentials {
    /// The bearer token to send now, fetching a new one from the provider if the one kept
    /// is about to expire.
    pub(super) async fn bearer(&self) -> Result<Option<SecretString>, CallError> {
        match self {
            Self::None => Ok(None),
            Self::Static(token) => Ok(Some(token.clone())),
            Self::Provider(tokens) => tokens.current().await.map(Some),
        }
    }

    /// The service refused the token it was shown: the next call asks for a new one.
    pub(super) fn refused(&self) {
        if let Self::Provider(tokens) = self {
            *tokens.kept.lock().expect("token cache") = None;
        }
    }
}

type TokenClient =
    BasicClient<EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointSet>;

/// Runboard's client at the provider, shared by every service's audience.
pub struct ServiceTokenClient {
    client: TokenClient,
    token_url: String,
    http: reqwest::Client,
    audiences: Mutex<HashMap<String, Arc<AudienceTokens>>>,
}

impl ServiceTokenClient {
    pub fn new(config: &MissionControlTokens) -> Self {
        let mut client = BasicClient::new(ClientId::new(config.client_id.clone()))
            .set_token_uri(TokenUrl::from_url(config.token_url.clone()));
        if let Some(secret) = &config.client_secret {
            client = client.set_client_secret(ClientSecret::new(secret.expose_secret().to_owned()));
        }
        Self {
            client,
            token_url: shown_url(&config.token_url),
            // No redirects: a token request must reach the configured endpoint or fail.
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(TOKEN_TIMEOUT)
                .build()
                .expect("a TLS backend is compiled in"),
            audiences: Mutex::new(HashMap::new()),
        }
    }

    /// The credentials of a service whose tokens name `audience`; services with the same
    /// audience share one token.
    pub fn credentials_for(self: &Arc<Self>, audience: &str) -> Credentials {
        let mut audiences = self.audiences.lock().expect("audience map");
        let tokens = audiences.entry(audience.to_owned()).or_insert_with(|| {
            Arc::new(AudienceTokens {
                client: self.clone(),
                audience: audience.to_owned(),
                kept: Mutex::new(None),
                fetching: tokio::sync::Mutex::new(()),
            })
        });
        Credentials::Provider(tokens.clone())
    }
}

/// The token kept for one audience.
pub struct AudienceTokens {
    client: Arc<ServiceTokenClient>,
    audience: String,
    kept: Mutex<Option<(SecretString, Instant)>>,
    /// Held while one call fetches a token, so that a burst of calls asks once.
    fetching: tokio::sync::Mutex<()>,
}

impl AudienceTokens {
    fn fresh(&self) -> Option<SecretString> {
        let kept = self.kept.lock().expect("token cache");
        kept.as_ref()
            .filter(|(_, renew_at)| Instant::now() < *renew_at)
            .map(|(token, _)| token.clone())
    }

    async fn current(&self) -> Result<SecretString, CallError> {
        if let Some(token) = self.fresh() {
            return Ok(token);
        }
        let _fetching = self.fetching.lock().await;
        if let Some(token) = self.fresh() {
            return Ok(token);
        }
        let asked_at = Instant::now();
        // RFC 8707: the service the token is for is named as a `resource`.
        let answer = self
            .client
            .client
            .exchange_client_credentials()
            .add_extra_param("resource", &self.audience)
            .request_async(&self.client.http)
            .await
            .map_err(|e| CallError::Credentials {
                token_url: self.client.token_url.clone(),
                audience: self.audience.clone(),
                detail: error_chain(&e),
            })?;
        let token = SecretString::from(answer.access_token().secret().clone());
        let renew_at = match answer.expires_in() {
            Some(lifetime) => asked_at + lifetime - RENEW_BEFORE_EXPIRY.min(lifetime / 4),
            None => asked_at + UNDATED_TOKEN_KEPT,
        };
        *self.kept.lock().expect("token cache") = Some((token.clone(), renew_at));
        Ok(token)
    }
}

//! Sign-in through an OpenID provider: the authorization code flow with PKCE, `state` and
//! `nonce`, and the checks of its ID and access tokens (signature against the provider's
//! keys, issuer, audience, expiry, nonce). The `openidconnect` crate does the protocol;
//! this module keeps the provider's metadata and keys, and refreshes the keys when a token
//! names one it has not seen, which is how a provider rotates them.

use std::time::Duration;

use chrono::{DateTime, Utc};
use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreGenderClaim, CoreIdTokenVerifier, CoreJsonWebKeySet,
    CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm, CoreProviderMetadata,
};
use openidconnect::{
    AdditionalClaims, AuthorizationCode, ClaimsVerificationError, ClientId, ClientSecret,
    CsrfToken, EndpointMaybeSet, EndpointNotSet, EndpointSet, IdToken, IdTokenClaims, IssuerUrl,
    JsonWebTokenType, Nonce, NonceVerifier, OAuth2TokenResponse, PkceCodeChallenge,
    PkceCodeVerifier, RedirectUrl, RefreshToken, Scope, SignatureVerificationError, TokenResponse,
};
use runboard_model::PersonKey;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use tokio::sync::RwLock;
use url::Url;

use super::constant_time_eq;
use crate::clock::Clock;
use crate::config::OidcConfig;
use crate::error_text::error_chain;

/// However many tokens name unknown keys, the provider's keys are fetched at most this often.
const KEY_REFRESH_INTERVAL: Duration = Duration::from_secs(2);
/// How long Runboard waits for the provider (discovery, keys, code exchange).
const PROVIDER_TIMEOUT: Duration = Duration::from_secs(10);

/// Claims beyond the standard ones, among them the configured groups claim.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct OtherClaims(serde_json::Map<String, serde_json::Value>);

impl AdditionalClaims for OtherClaims {}

type ProviderToken = IdToken<
    OtherClaims,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJwsSigningAlgorithm,
>;

/// A client made from discovery: the authorization endpoint is known, the token
/// endpoint and user info may be.
type SignInClient = CoreClient<
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// A person as the provider describes them: before their groups become roles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderUser {
    pub subject: PersonKey,
    pub name: String,
    pub groups: Vec<String>,
}

/// A person as the provider vouched for them just now, and the refresh token it gave, if
/// any, with which Runboard asks again later whether their groups still hold.
#[derive(Debug, Clone)]
pub struct ProviderSignIn {
    pub person: ProviderUser,
    pub refresh_token: Option<SecretString>,
}

/// A sign-in under way, kept in the browser's (not yet signed-in) session until the
/// provider sends the person back. Each is used once.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PendingLogin {
    state: String,
    nonce: String,
    pkce_verifier: String,
    /// The Runboard page to land on afterwards.
    pub return_to: String,
}

#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    #[error("the identity provider at {issuer} cannot be reached ({detail}); try again shortly")]
    Unreachable { issuer: String, detail: String },
    #[error(
        "this sign-in answer does not belong to the sign-in this browser started (its state differs); start again from the sign-in page"
    )]
    StateMismatch,
    #[error(
        "the identity provider would not exchange the sign-in code ({0}); codes work once and briefly, so start again from the sign-in page"
    )]
    Exchange(String),
    #[error("the token was rejected: {0}")]
    InvalidToken(String),
    #[error(
        "provider access tokens are not accepted here (identity.oidc.api_audience is not set); send a personal API token instead"
    )]
    AccessTokensOff,
}

struct Keys {
    metadata: CoreProviderMetadata,
    fetched_at: DateTime<Utc>,
}

pub struct OpenIdProvider {
    config: OidcConfig,
    issuer: IssuerUrl,
    redirect_url: RedirectUrl,
    http: reqwest::Client,
    /// Discovered on first use, so that Runboard starts while the provider is down.
    discovered: RwLock<Option<Keys>>,
    /// Runboard's clock, which says when the keys may be fetched again.
    clock: Clock,
}

impl OpenIdProvider {
    pub fn new(config: OidcConfig, public_url: &Url, clock: &Clock) -> Self {
        let redirect = public_url
            .join("auth/callback")
            .expect("a base URL joins a relative path");
        Self {
            issuer: IssuerUrl::new(config.issuer.clone()).expect("validated with the config"),
            redirect_url: RedirectUrl::from_url(redirect),
            // The protocol forbids following redirects from the token endpoint.
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(PROVIDER_TIMEOUT)
                .build()
                .expect("a TLS backend is compiled in"),
            config,
            discovered: RwLock::new(None),
            clock: clock.clone(),
        }
    }

    /// The provider's name for the sign-in button.
    pub fn display_name(&self) -> &str {
        &self.config.display_name
    }

    fn unreachable(&self, detail: impl std::fmt::Display) -> OidcError {
        OidcError::Unreachable {
            issuer: self.issuer.to_string(),
            detail: detail.to_string(),
        }
    }

    async fn metadata(&self) -> Result<CoreProviderMetadata, OidcError> {
        if let Some(keys) = self.discovered.read().await.as_ref() {
            return Ok(keys.metadata.clone());
        }
        let metadata = CoreProviderMetadata::discover_async(self.issuer.clone(), &self.http)
            .await
            .map_err(|e| self.unreachable(error_chain(&e)))?;
        *self.discovered.write().await = Some(Keys {
            metadata: metadata.clone(),
            fetched_at: self.clock.now(),
        });
        Ok(metadata)
    }

    /// Fetches the provider's keys again, unless that was done moments ago; `None` then.
    async fn refresh_keys(&self) -> Result<Option<CoreJsonWebKeySet>, OidcError> {
        let mut discovered = self.discovered.write().await;
        let Some(keys) = discovered.as_mut() else {
            return Ok(None);
        };
        if self.clock.since(keys.fetched_at) < KEY_REFRESH_INTERVAL {
            return Ok(None);
        }
        let jwks = CoreJsonWebKeySet::fetch_async(keys.metadata.jwks_uri(), &self.http)
            .await
            .map_err(|e| self.unreachable(error_chain(&e)))?;
        keys.metadata = keys.metadata.clone().set_jwks(jwks.clone());
        keys.fetched_at = self.clock.now();
        tracing::info!(issuer = %self.issuer, "refreshed the identity provider's signing keys");
        Ok(Some(jwks))
    }

    /// Runboard as the provider's client, from its discovered metadata.
    async fn client(&self) -> Result<SignInClient, OidcError> {
        Ok(CoreClient::from_provider_metadata(
            self.metadata().await?,
            ClientId::new(self.config.client_id.clone()),
            self.config
                .client_secret
                .as_ref()
                .map(|secret| ClientSecret::new(secret.expose_secret().to_owned())),
        )
        .set_redirect_uri(self.redirect_url.clone()))
    }

    /// Where to send the browser to sign in, and what to remember until it comes back.
    pub async fn start_login(&self, return_to: String) -> Result<(Url, PendingLogin), OidcError> {
        let client = self.client().await?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let scopes = self
            .config
            .scopes
            .iter()
            .filter(|s| s.as_str() != "openid")
            .map(|s| Scope::new(s.clone()));
        let (url, state, nonce) = client
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                CsrfToken::new_random,
                Nonce::new_random,
            )
            .add_scopes(scopes)
            .set_pkce_challenge(challenge)
            .url();
        let pending = PendingLogin {
            state: state.secret().clone(),
            nonce: nonce.secret().clone(),
            pkce_verifier: verifier.secret().clone(),
            return_to,
        };
        Ok((url, pending))
    }

    /// Completes a sign-in: checks `state`, exchanges `code` (with the PKCE verifier) and
    /// checks the ID token, nonce included.
    pub async fn finish_login(
        &self,
        pending: PendingLogin,
        state: &str,
        code: String,
    ) -> Result<ProviderSignIn, OidcError> {
        if !constant_time_eq(pending.state.as_bytes(), state.as_bytes()) {
            return Err(OidcError::StateMismatch);
        }
        let client = self.client().await?;
        let response = client
            .exchange_code(AuthorizationCode::new(code))
            .map_err(|e| OidcError::Exchange(e.to_string()))?
            .set_pkce_verifier(PkceCodeVerifier::new(pending.pkce_verifier))
            .request_async(&self.http)
            .await
            .map_err(|e| self.exchange_failed(&e))?;
        let id_token = response
            .id_token()
            .ok_or_else(|| OidcError::InvalidToken("the provider sent no ID token".into()))?
            .to_string();
        let person = self
            .verify_id_token(&id_token, &Nonce::new(pending.nonce))
            .await?;
        Ok(ProviderSignIn {
            person,
            refresh_token: response.refresh_token().map(|t| t.secret().clone().into()),
        })
    }

    /// Asks the provider again about a signed-in person, with the refresh token it gave:
    /// a fresh ID token says who they are and which groups they hold now. A provider that
    /// refuses (the person left, their grant was revoked) answers [`OidcError::Exchange`].
    pub async fn renew(&self, refresh_token: &SecretString) -> Result<ProviderSignIn, OidcError> {
        let client = self.client().await?;
        let refresh = RefreshToken::new(refresh_token.expose_secret().to_owned());
        let response = client
            .exchange_refresh_token(&refresh)
            .map_err(|e| OidcError::Exchange(e.to_string()))?
            .request_async(&self.http)
            .await
            .map_err(|e| self.exchange_failed(&e))?;
        let id_token = response.id_token().ok_or_else(|| {
            OidcError::InvalidToken(
                "the provider sent no ID token with the refreshed tokens".into(),
            )
        })?;
        // A refreshed ID token carries no nonce: no sign-in is under way.
        let person = self
            .verify_id_token(&id_token.to_string(), |_: Option<&Nonce>| Ok(()))
            .await?;
        Ok(ProviderSignIn {
            person,
            // Providers that rotate refresh tokens send a new one; others keep the old.
            refresh_token: Some(
                response
                    .refresh_token()
                    .map_or_else(|| refresh_token.clone(), |t| t.secret().clone().into()),
            ),
        })
    }

    /// A failed token request: the provider not answering, or refusing.
    fn exchange_failed(&self, error: &(dyn std::error::Error + 'static)) -> OidcError {
        let unreachable = std::iter::successors(Some(error), |e| e.source()).any(|e| {
            e.downcast_ref::<reqwest::Error>()
                .is_some_and(|e| e.is_connect() || e.is_timeout())
        });
        if unreachable {
            self.unreachable(error_chain(error))
        } else {
            OidcError::Exchange(error_chain(error))
        }
    }

    /// Checks an ID token issued to Runboard: for the sign-in that sent `nonce`, or (with a
    /// verifier that takes none) refreshed.
    pub async fn verify_id_token(
        &self,
        token: &str,
        nonce: impl NonceVerifier + Copy,
    ) -> Result<ProviderUser, OidcError> {
        let token = parse(token)?;
        let client_id = ClientId::new(self.config.client_id.clone());
        self.verify(|jwks| {
            let verifier = CoreIdTokenVerifier::new_public_client(
                client_id.clone(),
                self.issuer.clone(),
                jwks.clone(),
            );
            token
                .claims(&verifier, nonce)
                .and_then(|claims| self.person(claims))
        })
        .await
    }

    /// Checks a provider's JWT access token sent as a bearer token by a script.
    pub async fn verify_access_token(&self, token: &str) -> Result<ProviderUser, OidcError> {
        let audience = self
            .config
            .api_audience
            .clone()
            .ok_or(OidcError::AccessTokensOff)?;
        let token = parse(token)?;
        // RFC 9068 access tokens say `at+jwt`; many providers still say `JWT`.
        let types = ["at+jwt", "JWT"].map(|t| {
            JsonWebTokenType::new(t.into())
                .normalize()
                .expect("well-formed media types")
        });
        self.verify(|jwks| {
            let verifier = CoreIdTokenVerifier::new_public_client(
                ClientId::new(audience.clone()),
                self.issuer.clone(),
                jwks.clone(),
            )
            .set_allowed_jose_types(types.clone());
            token
                .claims(&verifier, |_: Option<&Nonce>| Ok(()))
                .and_then(|claims| self.person(claims))
        })
        .await
    }

    /// Runs `check` against the provider's keys, and once more with fresh keys when the
    /// token names a key Runboard has not seen.
    async fn verify(
        &self,
        check: impl Fn(&CoreJsonWebKeySet) -> Result<ProviderUser, ClaimsVerificationError>,
    ) -> Result<ProviderUser, OidcError> {
        let jwks = self.metadata().await?.jwks().clone();
        let outcome = match check(&jwks) {
            Err(ClaimsVerificationError::SignatureVerification(
                SignatureVerificationError::NoMatchingKey,
            )) => match self.refresh_keys().await? {
                Some(fresh) => check(&fresh),
                None => check(&jwks),
            },
            outcome => outcome,
        };
        outcome.map_err(|e| OidcError::InvalidToken(e.to_string()))
    }

    /// The person a token names. Their key is the issuer plus the claim
    /// `identity.oidc.person_claim` names (`sub` by default), the same for ID and access
    /// tokens: providers such as Okta and Azure AD give one person different `sub`s in them.
    fn person(
        &self,
        claims: &IdTokenClaims<OtherClaims, CoreGenderClaim>,
    ) -> Result<ProviderUser, ClaimsVerificationError> {
        let subject = claims.subject().to_string();
        let claim = self.config.person_claim.as_str();
        let person = match claim {
            "sub" => Some(subject.clone()),
            "email" => claims.email().map(|e| e.to_string()),
            "preferred_username" => claims.preferred_username().map(|u| u.to_string()),
            other => claims
                .additional_claims()
                .0
                .get(other)
                .and_then(|v| v.as_str())
                .map(String::from),
        }
        .filter(|value| !value.is_empty())
        .ok_or_else(|| {
            ClaimsVerificationError::Other(format!(
                "the token has no {claim:?} claim, which identity.oidc.person_claim names as the person's key"
            ))
        })?;
        let name = claims
            .name()
            .and_then(|n| n.get(None))
            .map(|n| n.to_string())
            .or_else(|| claims.preferred_username().map(|u| u.to_string()))
            .or_else(|| claims.email().map(|e| e.to_string()))
            .unwrap_or_else(|| subject.clone());
        let groups = match claims.additional_claims().0.get(&self.config.groups_claim) {
            Some(serde_json::Value::Array(items)) => items
                .iter()
                .filter_map(|g| g.as_str().map(String::from))
                .collect(),
            Some(serde_json::Value::String(one)) => vec![one.clone()],
            _ => Vec::new(),
        };
        Ok(ProviderUser {
            subject: format!("{}#{person}", self.issuer.as_str()).into(),
            name,
            groups,
        })
    }
}

fn parse(token: &str) -> Result<ProviderToken, OidcError> {
    token
        .parse()
        .map_err(|e| OidcError::InvalidToken(format!("it is not a well-formed JWT ({e})")))
}

//! Who may call a service's mission control: anyone (the demo), holders of one static
//! token, or holders of an OpenID provider's JWT access token for the service's audience,
//! as the backends of the console Runboard replaces took them.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use tokio::sync::RwLock;
use url::Url;

/// How a service checks its callers.
#[derive(Debug, Clone, Default)]
pub enum CallerCheck {
    /// Every call is taken.
    #[default]
    Anyone,
    /// Every call must carry `Authorization: Bearer <token>` with this token.
    Token(String),
    /// Every call must carry a JWT access token that `issuer` signed (its keys read from
    /// its discovery document), for `audience`, not expired; its `sub` is logged as the caller.
    ProviderTokens { issuer: Url, audience: String },
}

/// The caller a provider token named (its `sub`), for the call log.
#[derive(Debug, Clone)]
pub(crate) struct Caller(pub(crate) String);

/// The check of provider tokens: the provider's keys, fetched when first needed and again
/// when a token names a key not seen yet (the provider rotated).
pub(crate) struct ProviderKeys {
    issuer: Url,
    audience: String,
    keys: RwLock<Option<JwkSet>>,
    http: reqwest::Client,
}

#[derive(Deserialize)]
struct Discovery {
    jwks_uri: Url,
}

#[derive(Deserialize)]
struct Claims {
    sub: String,
}

impl ProviderKeys {
    pub(crate) fn new(issuer: Url, audience: String) -> Self {
        Self {
            issuer,
            audience,
            keys: RwLock::new(None),
            http: reqwest::Client::new(),
        }
    }

    async fn fetch_keys(&self) -> Result<JwkSet, String> {
        let discovery = format!(
            "{}/.well-known/openid-configuration",
            self.issuer.as_str().trim_end_matches('/')
        );
        let read = async {
            let discovery: Discovery = self.http.get(&discovery).send().await?.json().await?;
            self.http
                .get(discovery.jwks_uri)
                .send()
                .await?
                .json::<JwkSet>()
                .await
        };
        read.await
            .map_err(|e| format!("the token provider's keys cannot be read: {e}"))
    }

    /// The key a token's header names, from the keys known or, if it is not among them,
    /// from a fresh read of the provider's keys.
    async fn key(&self, kid: &str) -> Result<DecodingKey, String> {
        if let Some(jwk) = self.keys.read().await.as_ref().and_then(|k| k.find(kid)) {
            return DecodingKey::from_jwk(jwk).map_err(|e| e.to_string());
        }
        let fresh = self.fetch_keys().await?;
        let key = fresh.find(kid).map(DecodingKey::from_jwk);
        *self.keys.write().await = Some(fresh);
        match key {
            Some(key) => key.map_err(|e| e.to_string()),
            None => Err(format!("no key {kid:?} at the token provider")),
        }
    }

    /// The token's subject, or why it is refused.
    async fn subject(&self, token: &str) -> Result<String, String> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|e| format!("not a well-formed JWT: {e}"))?;
        if !matches!(
            header.alg,
            Algorithm::RS256 | Algorithm::PS256 | Algorithm::ES256
        ) {
            return Err(format!("tokens signed with {:?} are not taken", header.alg));
        }
        let kid = header.kid.ok_or("the token names no key (kid)")?;
        let key = self.key(&kid).await?;
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[self.issuer.as_str().trim_end_matches('/')]);
        validation.set_audience(&[&self.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        // An expired token is refused at once: the caller must replace it in time.
        validation.leeway = 0;
        jsonwebtoken::decode::<Claims>(token, &key, &validation)
            .map(|data| data.claims.sub)
            .map_err(|e| format!("the token is refused: {e}"))
    }
}

/// Refuses a call without the static token.
pub(crate) async fn require_token(
    State(token): State<Arc<str>>,
    request: Request,
    next: Next,
) -> Response {
    if presented(&request) == Some(&*token) {
        return next.run(request).await;
    }
    unauthorized("missing or wrong bearer token")
}

/// Refuses a call without a valid provider token; passes the caller on to the call log.
pub(crate) async fn require_provider_token(
    State(keys): State<Arc<ProviderKeys>>,
    mut request: Request,
    next: Next,
) -> Response {
    let Some(token) = presented(&request) else {
        return unauthorized("missing bearer token");
    };
    match keys.subject(token).await {
        Ok(subject) => {
            request.extensions_mut().insert(Caller(subject));
            next.run(request).await
        }
        Err(why) => unauthorized(&why),
    }
}

fn presented(request: &Request) -> Option<&str> {
    request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
}

fn unauthorized(why: &str) -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer")],
        axum::Json(serde_json::json!({ "errors": [{ "message": why }] })),
    )
        .into_response()
}

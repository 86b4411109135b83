//! `runboard login` and `runboard logout`: the command line signs in like `gh auth login`,
//! with the OAuth 2.0 device authorization grant (RFC 8628) against the OpenID provider the
//! Runboard names at `/auth/cli`, and keeps the tokens in the user's config directory,
//! readable only by them, refreshing them when they expire.

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use clap::Subcommand;
use oauth2::basic::{BasicClient, BasicTokenResponse};
use oauth2::{
    ClientId, DeviceAuthorizationUrl, DeviceCodeErrorResponseType, RefreshToken, RequestTokenError,
    Scope, StandardDeviceAuthorizationResponse, TokenResponse, TokenUrl,
};
use serde::{Deserialize, Serialize};
use url::Url;

use crate::action_cli::printable;
use crate::cli_client::{Runboard, provider_client, said};
use crate::identity::login::CommandLineSignIn;

/// An access token this close to its expiry is refreshed before it is sent.
const EXPIRY_MARGIN: Duration = Duration::from_secs(30);

const NOT_SIGNED_IN: &str = "not signed in: run `runboard login --url https://runboard.example.com`, or set RUNBOARD_TOKEN (and RUNBOARD_URL) to a personal API token from the Account page";

#[derive(Debug, Subcommand)]
pub enum SignIn {
    /// Sign in to a Runboard through its OpenID provider, as in a browser: prints an address
    /// and a code to enter there, waits, and keeps the tokens in your config directory
    /// ($XDG_CONFIG_HOME/runboard/credentials.toml), readable only by you.
    Login {
        /// The Runboard to sign in to: https://runboard.example.com
        #[arg(long, env = "RUNBOARD_URL")]
        url: Url,
    },
    /// Forget the sign-in: the stored tokens are deleted (and revoked at the provider, if it
    /// offers that).
    Logout,
}

/// What `runboard login` keeps: the Runboard, how to renew the tokens, and the tokens.
#[derive(Serialize, Deserialize)]
struct Credentials {
    runboard: Url,
    client_id: String,
    token_url: Url,
    revocation_url: Option<Url>,
    access_token: String,
    refresh_token: Option<String>,
    expires_at: Option<DateTime<Utc>>,
}

/// The parts of the provider's discovery document the command line uses.
#[derive(Deserialize)]
struct ProviderMetadata {
    device_authorization_endpoint: Option<Url>,
    token_endpoint: Url,
    revocation_endpoint: Option<Url>,
}

pub async fn run(command: SignIn) -> Result<(), String> {
    match command {
        SignIn::Login { url } => login(url).await,
        SignIn::Logout => logout().await,
    }
}

async fn login(runboard: Url) -> Result<(), String> {
    let http = provider_client()?;
    let sign_in: CommandLineSignIn =
        get_json(&http, runboard_address(&runboard, "auth/cli")?, "Runboard").await?;
    let discovery = Url::parse(&format!(
        "{}/.well-known/openid-configuration",
        sign_in.issuer.trim_end_matches('/')
    ))
    .map_err(|e| {
        format!(
            "Runboard names an identity provider at {} that has no address: {e}",
            sign_in.issuer
        )
    })?;
    let metadata: ProviderMetadata = get_json(&http, discovery, "the identity provider").await?;
    let device_url = metadata.device_authorization_endpoint.ok_or_else(|| {
        format!(
            "the identity provider at {} offers no device sign-in (its discovery document has no device_authorization_endpoint); set RUNBOARD_TOKEN to a personal API token instead",
            sign_in.issuer
        )
    })?;
    let client = BasicClient::new(ClientId::new(sign_in.client_id.clone()))
        .set_device_authorization_url(DeviceAuthorizationUrl::from_url(device_url))
        .set_token_uri(TokenUrl::from_url(metadata.token_endpoint.clone()));
    let details: StandardDeviceAuthorizationResponse = client
        .exchange_device_code()
        .add_scopes(sign_in.scopes.iter().cloned().map(Scope::new))
        .add_extra_param("resource", sign_in.audience.clone())
        .request_async(&http)
        .await
        .map_err(|e| {
            format!(
                "the identity provider would not start a device sign-in: {}",
                token_error(&e)
            )
        })?;
    let user_code = details.user_code().secret().clone();
    println!(
        "To sign in to {}, open {} in a browser and enter the code {}",
        runboard,
        printable(details.verification_uri().as_str()),
        printable(&user_code)
    );
    if let Some(complete) = details.verification_uri_complete() {
        println!("  (or open {})", printable(complete.secret()));
    }
    println!("Waiting for the sign-in to finish at the identity provider…");
    let tokens = client
        .exchange_device_access_token(&details)
        .request_async(&http, tokio::time::sleep, None)
        .await
        .map_err(|e| match &e {
            RequestTokenError::ServerResponse(refused) => match refused.error() {
                DeviceCodeErrorResponseType::AccessDenied => "the sign-in was denied at the identity provider; nothing was stored. Run `runboard login` again to start over".to_owned(),
                DeviceCodeErrorResponseType::ExpiredToken => format!(
                    "the code {} expired before the sign-in was finished at the identity provider; nothing was stored. Run `runboard login` again for a new code",
                    printable(&user_code)
                ),
                _ => format!("the identity provider refused the sign-in: {}", token_error(&e)),
            },
            _ => format!("the sign-in did not finish: {}", token_error(&e)),
        })?;
    let credentials = Credentials {
        runboard: runboard.clone(),
        client_id: sign_in.client_id,
        token_url: metadata.token_endpoint,
        revocation_url: metadata.revocation_endpoint,
        access_token: String::new(),
        refresh_token: None,
        expires_at: None,
    }
    .with(&tokens);
    // Kept only once Runboard takes the token: a person with no role is told so now.
    let me = Runboard::with_token(runboard, credentials.access_token.clone())?
        .call::<serde_json::Value>(reqwest::Method::GET, "/api/v1/me", None)
        .await
        .map_err(|e| format!("signed in at the identity provider, but {e}; nothing was stored"))?;
    let path = credentials_path()?;
    save(&path, &credentials)?;
    let roles: Vec<&str> = me["roles"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r.as_str())
        .collect();
    println!(
        "Signed in to {} as {} ({}). The sign-in is kept in {}; `runboard logout` forgets it.",
        credentials.runboard,
        printable(me["name"].as_str().unwrap_or("?")),
        roles.join(", "),
        path.display()
    );
    Ok(())
}

/// `path` at Runboard's address.
fn runboard_address(runboard: &Url, path: &str) -> Result<Url, String> {
    runboard
        .join(path)
        .map_err(|e| format!("{runboard} and {path} make no address: {e}"))
}

/// A GET answered in JSON by Runboard or the provider (`who`), which needs no token.
async fn get_json<T: serde::de::DeserializeOwned>(
    http: &reqwest::Client,
    url: Url,
    who: &str,
) -> Result<T, String> {
    let response = http
        .get(url.clone())
        .send()
        .await
        .map_err(|e| format!("cannot reach {who} at {url}: {e}"))?;
    let status = response.status();
    let text = response
        .text()
        .await
        .map_err(|e| format!("{who}'s answer from {url} broke off: {e}"))?;
    if !status.is_success() {
        return Err(format!("{who} refused ({status}) at {url}: {}", said(text)));
    }
    serde_json::from_str(&text)
        .map_err(|e| format!("{who}'s answer from {url} is not what was expected: {e}"))
}

/// A token request's failure in words, the provider's own where it gave some.
fn token_error<RE: std::error::Error + 'static, T: oauth2::ErrorResponse + 'static>(
    error: &RequestTokenError<RE, T>,
) -> String {
    match error {
        RequestTokenError::ServerResponse(refused) => refused.to_string(),
        other => runboard_core::error_text::error_chain(other),
    }
}

impl Credentials {
    /// These credentials with fresh tokens; a provider that sends no new refresh token
    /// keeps the old one valid.
    fn with(mut self, tokens: &BasicTokenResponse) -> Self {
        self.access_token = tokens.access_token().secret().clone();
        if let Some(refresh) = tokens.refresh_token() {
            self.refresh_token = Some(refresh.secret().clone());
        }
        self.expires_at = tokens
            .expires_in()
            .and_then(|lifetime| chrono::Duration::from_std(lifetime).ok())
            .map(|lifetime| Utc::now() + lifetime);
        self
    }

    fn expired(&self) -> bool {
        self.expires_at.is_some_and(|at| {
            at - chrono::Duration::from_std(EXPIRY_MARGIN).unwrap_or_default() <= Utc::now()
        })
    }
}

/// The Runboard signed in to and an access token for it, refreshed first if it expired.
pub(crate) async fn signed_in(asked: Option<&Url>) -> Result<(Url, String), String> {
    let path = credentials_path()?;
    let credentials = load(&path)?.ok_or(NOT_SIGNED_IN)?;
    if let Some(asked) = asked.filter(|asked| **asked != credentials.runboard) {
        return Err(format!(
            "signed in to {}, not {asked}: run `runboard login --url {asked}`, or set RUNBOARD_TOKEN",
            credentials.runboard
        ));
    }
    if !credentials.expired() {
        return Ok((credentials.runboard, credentials.access_token));
    }
    let again = format!(
        "run `runboard login --url {}` to sign in again",
        credentials.runboard
    );
    let refresh = credentials
        .refresh_token
        .clone()
        .ok_or_else(|| format!("your sign-in has expired and can not be renewed: {again}"))?;
    let client = BasicClient::new(ClientId::new(credentials.client_id.clone()))
        .set_token_uri(TokenUrl::from_url(credentials.token_url.clone()));
    let tokens = client
        .exchange_refresh_token(&RefreshToken::new(refresh))
        .request_async(&provider_client()?)
        .await
        .map_err(|e| {
            format!(
                "your sign-in has expired and the identity provider would not renew it ({}): {again}",
                token_error(&e)
            )
        })?;
    let credentials = credentials.with(&tokens);
    save(&path, &credentials)?;
    Ok((credentials.runboard, credentials.access_token))
}

async fn logout() -> Result<(), String> {
    let path = credentials_path()?;
    let Some(credentials) = load(&path)? else {
        println!("Not signed in; nothing to forget.");
        return Ok(());
    };
    if let (Some(revocation_url), Some(refresh)) =
        (&credentials.revocation_url, &credentials.refresh_token)
        && let Err(e) = revoke(revocation_url, &credentials.client_id, refresh).await
    {
        eprintln!(
            "warning: the identity provider did not revoke the sign-in ({e}); it is forgotten here all the same"
        );
    }
    std::fs::remove_file(&path)
        .map_err(|e| format!("cannot delete the stored sign-in {}: {e}", path.display()))?;
    println!(
        "Signed out of {}: {} is deleted.",
        credentials.runboard,
        path.display()
    );
    Ok(())
}

/// Revokes the refresh token (RFC 7009), and with it the tokens it gave.
async fn revoke(at: &Url, client_id: &str, refresh_token: &str) -> Result<(), String> {
    let response = provider_client()?
        .post(at.clone())
        .form(&[
            ("token", refresh_token),
            ("token_type_hint", "refresh_token"),
            ("client_id", client_id),
        ])
        .send()
        .await
        .map_err(|e| runboard_core::error_text::error_chain(&e))?;
    match response.status() {
        status if status.is_success() => Ok(()),
        status => Err(format!("{status} from {at}")),
    }
}

/// `$XDG_CONFIG_HOME/runboard/credentials.toml`, else `~/.config/runboard/…` (as `gh` does,
/// macOS included); `%APPDATA%\runboard\…` on Windows.
fn credentials_path() -> Result<PathBuf, String> {
    let absolute = |name: &str| {
        std::env::var_os(name)
            .map(PathBuf::from)
            .filter(|path| path.is_absolute())
    };
    let config = if cfg!(windows) {
        absolute("APPDATA")
    } else {
        absolute("XDG_CONFIG_HOME").or_else(|| absolute("HOME").map(|home| home.join(".config")))
    };
    config
        .map(|dir| dir.join("runboard").join("credentials.toml"))
        .ok_or_else(|| {
            "cannot tell where your config directory is: set XDG_CONFIG_HOME or HOME".to_owned()
        })
}

fn load(path: &Path) -> Result<Option<Credentials>, String> {
    match std::fs::read_to_string(path) {
        Ok(text) => toml::from_str(&text).map(Some).map_err(|e| {
            format!(
                "the stored sign-in {} cannot be read ({e}); run `runboard login` again",
                path.display()
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!(
            "cannot read the stored sign-in {}: {e}",
            path.display()
        )),
    }
}

/// Writes the credentials readable by their owner only, from the first byte on: a file of
/// mode 0600 beside them, renamed over them, so that no reader sees half a file.
fn save(path: &Path, credentials: &Credentials) -> Result<(), String> {
    use std::io::Write;
    let not_stored =
        |e: std::io::Error| format!("cannot store the sign-in in {}: {e}", path.display());
    let dir = path
        .parent()
        .expect("the credentials file is in a directory");
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    let mut file = std::fs::OpenOptions::new();
    file.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
        builder.mode(0o700);
        file.mode(0o600);
    }
    builder.create(dir).map_err(not_stored)?;
    let text = toml::to_string(credentials).expect("credentials serialize");
    let temporary = dir.join(format!(".credentials.toml.{}", std::process::id()));
    let _ = std::fs::remove_file(&temporary);
    let written = file.open(&temporary).and_then(|mut file| {
        file.write_all(text.as_bytes())?;
        file.sync_all()
    });
    written
        .and_then(|()| std::fs::rename(&temporary, path))
        .map_err(|e| {
            let _ = std::fs::remove_file(&temporary);
            not_stored(e)
        })
}

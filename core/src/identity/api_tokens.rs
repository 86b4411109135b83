//! Personal API tokens for scripts and CLIs: shown once, kept only as a hash, expiring,
//! revocable by their holder.

use std::collections::BTreeSet;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use rand::RngCore;
use runboard_model::{ApiToken, IssuedApiToken, PersonKey, Role, User};
use sha2::{Digest, Sha256};

use super::Caller;
use crate::db::on_pool;
use crate::store::{Store, StoreError};

/// Every secret starts with this, so a leaked one is easy to recognise and to grep for.
const PREFIX: &str = "rbt_";

/// Why a bearer token was turned away; the message is for the script's author.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("the API token is not known; it may have been mistyped or deleted")]
    Unknown,
    #[error("the API token expired at {0}; create a new one")]
    Expired(DateTime<Utc>),
    #[error("the API token was revoked at {0}")]
    Revoked(DateTime<Utc>),
    #[error(
        "the API token's holder no longer holds any of the roles it was issued with (as their provider groups said when last seen); ask for one of the groups in identity.roles"
    )]
    NoRoleLeft,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why a person could not have the token they asked for.
#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    #[error(
        "personal API tokens are created from a signed-in browser session, not with another token"
    )]
    NotFromSession,
    #[error("the label must be 1 to 100 characters, saying what the token is for")]
    Label,
    #[error("a token must live longer than 0s and at most {0}")]
    Lifetime(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Issues the signed-in person a token, as asked from the API or the account screen:
/// a browser session only (a token may not mint tokens), a label, and a lifetime within `max`.
pub async fn issue_personal_token(
    app: &crate::App,
    caller: &Caller,
    label: &str,
    lifetime: Duration,
    max: Duration,
) -> Result<IssuedApiToken, IssueError> {
    let Caller::Session(signed_in) = caller else {
        return Err(IssueError::NotFromSession);
    };
    let label = label.trim();
    if label.is_empty() || label.chars().count() > 100 {
        return Err(IssueError::Label);
    }
    if lifetime.is_zero() || lifetime > max {
        return Err(IssueError::Lifetime(
            humantime::format_duration(max).to_string(),
        ));
    }
    Ok(app
        .store
        .issue_api_token(&signed_in.user, label, lifetime, app.clock.now())
        .await?)
}

#[derive(sqlx::FromRow)]
struct TokenRow {
    id: String,
    subject: PersonKey,
    name: String,
    roles: String,
    label: String,
    created_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    revoked_at: Option<DateTime<Utc>>,
    last_used_at: Option<DateTime<Utc>>,
}

/// A token and its holder's roles as last seen, and when, if Runboard has seen them.
#[derive(sqlx::FromRow)]
struct SeenTokenRow {
    #[sqlx(flatten)]
    token: TokenRow,
    seen_roles: Option<String>,
    seen_at: Option<DateTime<Utc>>,
}

impl TokenRow {
    fn roles(&self) -> Result<Vec<Role>, StoreError> {
        serde_json::from_str(&self.roles).map_err(StoreError::corrupt)
    }

    fn into_token(self) -> Result<ApiToken, StoreError> {
        Ok(ApiToken {
            roles: self.roles()?,
            id: self.id,
            label: self.label,
            created_at: self.created_at,
            expires_at: self.expires_at,
            revoked_at: self.revoked_at,
            last_used_at: self.last_used_at,
        })
    }
}

/// How stale a token's "last used" may be: it says when, to the minute.
const LAST_USED_EVERY_SECS: i64 = 60;

fn digest(secret: &str) -> String {
    crate::audit::hex(&Sha256::digest(secret.as_bytes()))
}

/// Whether a bearer token looks like one of ours rather than a provider's JWT.
pub fn is_api_token(bearer: &str) -> bool {
    bearer.starts_with(PREFIX)
}

const COLUMNS: &str =
    "id, subject, name, roles, label, created_at, expires_at, revoked_at, last_used_at";

impl Store {
    /// Issues a token that acts as `user` with the roles they hold now, until `lifetime` passes.
    pub async fn issue_api_token(
        &self,
        user: &User,
        label: &str,
        lifetime: Duration,
        now: DateTime<Utc>,
    ) -> Result<IssuedApiToken, StoreError> {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        let secret = format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes));
        let expires_at =
            now + chrono::Duration::from_std(lifetime).unwrap_or(chrono::Duration::MAX / 2);
        let token = ApiToken {
            id: uuid::Uuid::new_v4().to_string(),
            label: label.to_owned(),
            roles: user.roles.iter().copied().collect(),
            created_at: now,
            expires_at,
            revoked_at: None,
            last_used_at: None,
        };
        let roles = serde_json::to_string(&token.roles).expect("roles serialize");
        on_pool!(self.pool, |pool| {
            sqlx::query(
                "INSERT INTO api_token (id, secret_sha256, subject, name, roles, label, created_at, expires_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(&token.id)
            .bind(digest(&secret))
            .bind(&user.subject)
            .bind(&user.name)
            .bind(&roles)
            .bind(label)
            .bind(now)
            .bind(expires_at)
            .execute(pool)
            .await
            .map(drop)
        })?;
        Ok(IssuedApiToken { token, secret })
    }

    /// The user a bearer secret stands for, if it is ours, unexpired and not revoked. Its
    /// holder not seen from the provider within `roles_ttl`, it acts as a viewer: someone
    /// taken out of a group who never signs in again keeps no more than reading.
    pub async fn authenticate_api_token(
        &self,
        secret: &str,
        now: DateTime<Utc>,
        roles_ttl: std::time::Duration,
    ) -> Result<User, TokenError> {
        // The holder's roles as last seen from the provider come along in the same query.
        let query = format!(
            "SELECT {COLUMNS},
                 (SELECT p.roles FROM person p WHERE p.subject = api_token.subject) AS seen_roles,
                 (SELECT p.seen_at FROM person p WHERE p.subject = api_token.subject) AS seen_at
             FROM api_token WHERE secret_sha256 = $1"
        );
        let row: Option<SeenTokenRow> = on_pool!(self.pool, |pool| {
            sqlx::query_as(&query)
                .bind(digest(secret))
                .fetch_optional(pool)
                .await
        })
        .map_err(StoreError::from)?;
        let SeenTokenRow {
            token: row,
            seen_roles,
            seen_at,
        } = row.ok_or(TokenError::Unknown)?;
        if let Some(at) = row.revoked_at {
            return Err(TokenError::Revoked(at));
        }
        if row.expires_at <= now {
            return Err(TokenError::Expired(row.expires_at));
        }
        // Written at most once a minute: a script polling a page must not cost a write a request.
        if row
            .last_used_at
            .is_none_or(|at| now - at > chrono::Duration::seconds(LAST_USED_EVERY_SECS))
        {
            on_pool!(self.pool, |pool| {
                sqlx::query("UPDATE api_token SET last_used_at = $1 WHERE id = $2")
                    .bind(now)
                    .bind(&row.id)
                    .execute(pool)
                    .await
                    .map(drop)
            })
            .map_err(StoreError::from)?;
        }
        let issued: BTreeSet<Role> = row.roles()?.into_iter().collect();
        // Capped at what the provider last said: a group taken away takes the role away.
        let roles = match seen_roles {
            Some(seen) => {
                let seen: BTreeSet<Role> =
                    serde_json::from_str(&seen).map_err(StoreError::corrupt)?;
                issued.intersection(&seen).copied().collect()
            }
            None => issued,
        };
        if roles.is_empty() {
            return Err(TokenError::NoRoleLeft);
        }
        // A holder Runboard never saw from a provider (the demo's users) keeps the token's
        // roles: there is nothing newer to go by.
        let roles_ttl = chrono::Duration::from_std(roles_ttl).unwrap_or(chrono::Duration::MAX);
        let roles = if seen_at.is_some_and(|at| now - at > roles_ttl) {
            BTreeSet::from([Role::Viewer])
        } else {
            roles
        };
        Ok(User {
            roles,
            subject: row.subject,
            name: row.name,
        })
    }

    /// Notes a person's roles as the provider gives them now (at sign-in, or with an
    /// access token); their API tokens act with these from now on, capped at what each was
    /// issued with. Writes only when something changed, or once a minute.
    pub async fn saw_person(&self, user: &User, now: DateTime<Utc>) -> Result<(), StoreError> {
        let roles = serde_json::to_string(&user.roles).expect("roles serialize");
        Ok(on_pool!(self.pool, |pool| {
            sqlx::query(
                "INSERT INTO person (subject, name, roles, seen_at) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (subject) DO UPDATE SET
                     name = excluded.name, roles = excluded.roles, seen_at = excluded.seen_at
                 WHERE person.roles <> excluded.roles OR person.name <> excluded.name
                     OR person.seen_at < $5",
            )
            .bind(&user.subject)
            .bind(&user.name)
            .bind(&roles)
            .bind(now)
            .bind(now - chrono::Duration::seconds(LAST_USED_EVERY_SECS))
            .execute(pool)
            .await
            .map(drop)
        })?)
    }

    /// The tokens `subject` holds, newest first, revoked and expired ones included.
    pub async fn api_tokens_of(&self, subject: &PersonKey) -> Result<Vec<ApiToken>, StoreError> {
        let query = format!(
            "SELECT {COLUMNS} FROM api_token WHERE subject = $1 ORDER BY created_at DESC, id"
        );
        let rows: Vec<TokenRow> = on_pool!(self.pool, |pool| {
            sqlx::query_as(&query).bind(subject).fetch_all(pool).await
        })?;
        rows.into_iter().map(TokenRow::into_token).collect()
    }

    /// Revokes one of `subject`'s tokens; false when they hold no live token with that id.
    pub async fn revoke_api_token(
        &self,
        subject: &PersonKey,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let done = on_pool!(self.pool, |pool| {
            sqlx::query(
                "UPDATE api_token SET revoked_at = $1
                 WHERE subject = $2 AND id = $3 AND revoked_at IS NULL",
            )
            .bind(now)
            .bind(subject)
            .bind(id)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(done == 1)
    }

    /// Revokes every live token of `subject` with this label (the demo's tokens of earlier runs).
    pub async fn revoke_api_tokens_labelled(
        &self,
        subject: &PersonKey,
        label: &str,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        Ok(on_pool!(self.pool, |pool| {
            sqlx::query(
                "UPDATE api_token SET revoked_at = $1
                 WHERE subject = $2 AND label = $3 AND revoked_at IS NULL",
            )
            .bind(now)
            .bind(subject)
            .bind(label)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })?)
    }
}

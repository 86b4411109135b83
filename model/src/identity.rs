use std::collections::BTreeSet;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::text_name;

/// What a person may do in Runboard (SPEC.md, "Roles"). Roles add up: an operator who is
/// also an approver holds both. Any role may read everything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads everything, acts on nothing: business users.
    Viewer,
    /// Asks for corrective actions.
    Operator,
    /// Approves other people's actions.
    Approver,
    /// Changes Runboard's own settings.
    Admin,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Viewer, Role::Operator, Role::Approver, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Approver => "approver",
            Role::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A person's stable key: the provider's issuer and `identity.oidc.person_claim` (`sub` by
/// default), or `demo:<login>` for a demo user. What the two-person rule compares, and how
/// the store, the audit log and a service's call headers name a person; their name is only
/// for screens. Any text: the provider decides what its claims look like.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "sqlx", derive(sqlx::Type), sqlx(transparent))]
#[serde(transparent)]
pub struct PersonKey(String);

text_name!(PersonKey);

/// A person Runboard knows: who they are at the identity provider, and what they may do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct User {
    /// The person's key ([`PersonKey`]).
    pub subject: PersonKey,
    /// How screens and the audit log name them.
    pub name: String,
    pub roles: BTreeSet<Role>,
}

impl User {
    pub fn has(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }

    /// The roles as words, for a screen: "operator, approver".
    pub fn roles_text(&self) -> String {
        self.roles
            .iter()
            .map(|r| r.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The signed-in user as a screen sees them, with the token their forms must carry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SignedIn {
    pub user: User,
    /// Proves a form was rendered by Runboard for this session (cross-site request forgery).
    pub csrf_token: String,
}

/// A personal API token as its holder sees it in a list: never the secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ApiToken {
    pub id: String,
    /// What it is for, in its holder's words: "nightly report".
    pub label: String,
    /// The holder's roles when it was issued; it acts with these.
    pub roles: Vec<Role>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
}

impl ApiToken {
    /// Whether it still opens the API at `now`.
    pub fn is_live(&self, now: DateTime<Utc>) -> bool {
        self.revoked_at.is_none() && self.expires_at > now
    }

    /// Its state at `now` in a word: `revoked`, `expired` or `live`.
    pub fn state_at(&self, now: DateTime<Utc>) -> &'static str {
        match (self.revoked_at, self.is_live(now)) {
            (Some(_), _) => "revoked",
            (None, false) => "expired",
            (None, true) => "live",
        }
    }
}

/// A token just issued, with the secret that is shown this once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct IssuedApiToken {
    pub token: ApiToken,
    pub secret: String,
}

/// One browser session of a person, as an admin sees it: never its id or cookie.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SessionSeen {
    pub name: String,
    pub signed_in_at: DateTime<Utc>,
}

/// Every way a person is signed in to Runboard: what an admin looks at before ending it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PersonAccess {
    pub subject: PersonKey,
    /// Their browser sessions that have not ended.
    pub sessions: Vec<SessionSeen>,
    /// Their personal API tokens, revoked and expired ones included.
    pub tokens: Vec<ApiToken>,
}

/// Someone who can use Runboard right now: a browser session that has not ended, or a
/// live API token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PersonWithAccess {
    pub subject: PersonKey,
    pub name: String,
    pub sessions: u64,
    pub live_tokens: u64,
}

/// What ending a person's access ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AccessRevoked {
    pub subject: PersonKey,
    pub sessions_ended: u64,
    pub tokens_revoked: u64,
}

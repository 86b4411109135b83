//! Identity: who is calling and what they may do.
//!
//! People sign in through the configured OpenID provider (or, on the embedded default,
//! as a demo user); scripts send a personal API token or a provider access token. Either
//! way the caller becomes a [`User`] whose roles come from their provider groups, and
//! every route states the [`Access`] it needs. Sessions live in the store.

mod access;
mod api_tokens;
pub mod demo;
mod oidc;
mod sessions;

use std::collections::BTreeSet;

use runboard_model::{Role, SignedIn, User};

use crate::config::{Config, RoleGroups};

pub use access::AccessError;
pub use api_tokens::{IssueError, TokenError, is_api_token, issue_personal_token};
pub use oidc::{OidcError, OpenIdProvider, PendingLogin, ProviderSignIn, ProviderUser};
pub use sessions::SessionStore;

/// Who sent a request, as found out before it is routed.
#[derive(Debug, Clone)]
pub enum Caller {
    Anonymous,
    /// A browser with a session cookie: its writes must also pass the CSRF checks.
    Session(SignedIn),
    /// A script with a personal API token or a provider access token.
    Bearer(User),
}

impl Caller {
    pub fn user(&self) -> Option<&User> {
        match self {
            Caller::Anonymous => None,
            Caller::Session(signed_in) => Some(&signed_in.user),
            Caller::Bearer(user) => Some(user),
        }
    }
}

/// What a route asks of its caller. Every route has one; a route without one is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone, signed in or not: probes, the sign-in pages, static files.
    Public,
    /// Anyone signed in, whatever their role.
    Read,
    /// Anyone signed in through a browser session, not with a token: minting tokens.
    BrowserSession,
    /// Asking for corrective actions.
    Operate,
    /// Approving other people's actions.
    Approve,
    /// Runboard's own settings.
    Admin,
}

/// Why a caller may not use a route.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    #[error("sign in first")]
    NotSignedIn,
    #[error("this needs the {0} role, which you do not have")]
    Lacks(Role),
    #[error("this is done from a signed-in browser session, not with a token")]
    NeedsSession,
}

impl Access {
    /// Whether `caller` may use a route that asks this much.
    pub fn check(self, caller: &Caller) -> Result<(), Denied> {
        let needed = match self {
            Access::Public => return Ok(()),
            Access::Read => None,
            Access::BrowserSession if !matches!(caller, Caller::Session(_)) => {
                return Err(match caller {
                    Caller::Anonymous => Denied::NotSignedIn,
                    _ => Denied::NeedsSession,
                });
            }
            Access::BrowserSession => None,
            Access::Operate => Some(Role::Operator),
            Access::Approve => Some(Role::Approver),
            Access::Admin => Some(Role::Admin),
        };
        let user = caller.user().ok_or(Denied::NotSignedIn)?;
        match needed {
            Some(role) if !user.has(role) => Err(Denied::Lacks(role)),
            _ => Ok(()),
        }
    }
}

/// The ways in that the config allows, and the mapping from groups to roles.
pub struct Identity {
    roles: RoleGroups,
    /// The OpenID provider, when one is configured.
    pub oidc: Option<OpenIdProvider>,
    /// Whether the demo users may sign in with one click (loopback, embedded store only).
    pub demo_users: bool,
}

impl Identity {
    /// The ways to sign in that `config` names; the provider's keys age by `clock`.
    pub fn new(config: &Config, clock: &crate::clock::Clock) -> Self {
        let identity = &config.identity;
        Self {
            roles: identity.roles.clone(),
            oidc: identity
                .oidc
                .as_ref()
                .map(|oidc| OpenIdProvider::new(oidc.clone(), &config.public_url(), clock)),
            demo_users: identity.demo_users,
        }
    }

    /// The roles a person's provider groups give them; empty when none of their groups counts.
    pub fn roles_for(&self, groups: &[String]) -> BTreeSet<Role> {
        let mapping = [
            (Role::Viewer, &self.roles.viewer),
            (Role::Operator, &self.roles.operator),
            (Role::Approver, &self.roles.approver),
            (Role::Admin, &self.roles.admin),
        ];
        mapping
            .into_iter()
            .filter(|(_, wanted)| wanted.iter().any(|g| groups.contains(g)))
            .map(|(role, _)| role)
            .collect()
    }

    /// A provider's person as a Runboard user, with the roles their groups give now: none
    /// when none of their groups counts (they are turned away, and their tokens with them).
    pub fn user_of(&self, person: ProviderUser) -> User {
        User {
            roles: self.roles_for(&person.groups),
            subject: person.subject,
            name: person.name,
        }
    }
}

/// Compares secrets in time that does not depend on where they first differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(roles: &[Role]) -> Caller {
        Caller::Bearer(User {
            subject: "s".into(),
            name: "n".into(),
            roles: roles.iter().copied().collect(),
        })
    }

    #[test]
    fn access_is_denied_by_role_and_to_strangers() {
        assert_eq!(
            Access::Read.check(&Caller::Anonymous),
            Err(Denied::NotSignedIn)
        );
        assert_eq!(Access::Public.check(&Caller::Anonymous), Ok(()));
        assert_eq!(Access::Read.check(&user(&[Role::Viewer])), Ok(()));
        assert_eq!(
            Access::Operate.check(&user(&[Role::Viewer])),
            Err(Denied::Lacks(Role::Operator))
        );
        assert_eq!(
            Access::Approve.check(&user(&[Role::Operator])),
            Err(Denied::Lacks(Role::Approver))
        );
        assert_eq!(
            Access::Approve.check(&user(&[Role::Operator, Role::Approver])),
            Ok(())
        );
    }

    #[test]
    fn groups_map_to_roles_and_unknown_groups_give_none() {
        let mut config = Config::demo(&Default::default()).unwrap();
        config.identity.roles = RoleGroups {
            viewer: vec!["business".into()],
            operator: vec!["sre".into()],
            approver: vec!["sre".into(), "leads".into()],
            admin: vec!["platform".into()],
        };
        let identity = Identity::new(&config, &crate::clock::Clock::default());
        assert_eq!(
            identity.roles_for(&["sre".into()]),
            BTreeSet::from([Role::Operator, Role::Approver])
        );
        let stranger = ProviderUser {
            subject: "x".into(),
            name: "X".into(),
            groups: vec!["marketing".into()],
        };
        assert!(identity.user_of(stranger).roles.is_empty());
    }
}

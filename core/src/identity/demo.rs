//! The embedded default's demo users: two operators who also approve, so the two-person
//! rule can be tried at once, and a business user who only looks.

use std::collections::BTreeSet;

use runboard_model::{Role, User};

/// The label of the personal API token each demo user gets when `runboard demo` starts.
pub const TOKEN_LABEL: &str = "demo";

/// How a demo user's person key starts: `demo:alice`.
const KEY_PREFIX: &str = "demo:";

pub fn users() -> Vec<User> {
    let user = |subject: &str, name: &str, roles: &[Role]| User {
        subject: format!("{KEY_PREFIX}{subject}").into(),
        name: name.into(),
        roles: roles.iter().copied().collect::<BTreeSet<_>>(),
    };
    vec![
        user("alice", "Alice Operator", &[Role::Operator, Role::Approver]),
        user("bob", "Bob Operator", &[Role::Operator, Role::Approver]),
        user("vera", "Vera Viewer", &[Role::Viewer]),
        user("ada", "Ada Admin", &[Role::Viewer, Role::Admin]),
    ]
}

/// The demo user with this login (`alice`, not `demo:alice`).
pub fn user(login: &str) -> Option<User> {
    users().into_iter().find(|u| self::login(u) == login)
}

/// How a demo user signs in (`alice` for `demo:alice`).
pub fn login(user: &User) -> &str {
    let key = user.subject.as_str();
    key.strip_prefix(KEY_PREFIX).unwrap_or(key)
}

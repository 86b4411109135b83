//! The names the product gives its actions' parts, each a type of its own so one cannot
//! stand in for another.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Writes the common parts of a name that is text underneath: read as its text, shown
/// as it, in JSON and the store as a plain string.
macro_rules! text_name {
    ($name:ident) => {
        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl From<String> for $name {
            fn from(text: String) -> Self {
                Self(text)
            }
        }

        impl From<&str> for $name {
            fn from(text: &str) -> Self {
                Self(text.to_owned())
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }
    };
}
pub(crate) use text_name;

/// An action's id, as its URL and the audit log name it. An id no action has is not an
/// error here: looking it up finds nothing.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "sqlx", derive(sqlx::Type), sqlx(transparent))]
#[serde(transparent)]
pub struct ActionId(String);

text_name!(ActionId);

/// The SHA-256 of a preview, in hex: what an approval binds to, so an approver approves
/// exactly the preview they read.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "sqlx", derive(sqlx::Type), sqlx(transparent))]
#[serde(transparent)]
pub struct Digest(String);

text_name!(Digest);

/// The key a call to a service carries, so a call sent twice is applied once (SPEC.md,
/// "Execute"): `runboard:<action>:<call>`, or `runboard:<action>:<step>:<call>` in a
/// runbook. Its calls keep their entities, so a key always names the same call.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "sqlx", derive(sqlx::Type), sqlx(transparent))]
#[serde(transparent)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// The key of the call numbered `call` of an action.
    pub fn of_call(action: &ActionId, call: i32) -> Self {
        Self(format!("runboard:{action}:{call}"))
    }

    /// The key of a runbook's call numbered `call`, of the step `step` (counted from 0).
    pub fn of_step_call(action: &ActionId, step: usize, call: i32) -> Self {
        Self(format!("runboard:{action}:{step}:{call}"))
    }

    /// How the keys of an action's calls are made, for people: `runboard:<id>:<call>`, or
    /// `runboard:<id>:<step>:<call>` for a runbook.
    pub fn pattern(action: &ActionId, runbook: bool) -> String {
        if runbook {
            format!("runboard:{action}:<step>:<call>")
        } else {
            format!("runboard:{action}:<call>")
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for IdempotencyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::{ActionId, IdempotencyKey};

    #[test]
    fn keys_name_the_action_the_step_and_the_call_as_services_have_always_seen_them() {
        let a1 = ActionId::from("a1");
        assert_eq!(IdempotencyKey::of_call(&a1, 7).as_str(), "runboard:a1:7");
        assert_eq!(
            IdempotencyKey::of_step_call(&a1, 2, 7).as_str(),
            "runboard:a1:2:7"
        );
        assert_eq!(
            IdempotencyKey::pattern(&a1, true),
            "runboard:a1:<step>:<call>"
        );
        assert_eq!(IdempotencyKey::pattern(&a1, false), "runboard:a1:<call>");
    }
}

//! The names the product gives its actions' parts, each a type of its own so one cannot
//! stand in for another.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The key a call to a service carries, so a call sent twice is applied once (SPEC.md,
/// "Execute"): `runboard:<action>:<call>`, or `runboard:<action>:<step>:<call>` in a
/// runbook. Its calls keep their entities, so a key always names the same call.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "sqlx", derive(sqlx::Type), sqlx(transparent))]
#[serde(transparent)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// The key of the call numbered `call` of an action.
    pub fn of_call(action: &str, call: i32) -> Self {
        Self(format!("runboard:{action}:{call}"))
    }

    /// The key of a runbook's call numbered `call`, of the step `step` (counted from 0).
    pub fn of_step_call(action: &str, step: usize, call: i32) -> Self {
        Self(format!("runboard:{action}:{step}:{call}"))
    }

    /// How the keys of an action's calls are made, for people: `runboard:<id>:<call>`, or
    /// `runboard:<id>:<step>:<call>` for a runbook.
    pub fn pattern(action: &str, runbook: bool) -> String {
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
    use super::IdempotencyKey;

    #[test]
    fn keys_name_the_action_the_step_and_the_call_as_services_have_always_seen_them() {
        assert_eq!(IdempotencyKey::of_call("a1", 7).as_str(), "runboard:a1:7");
        assert_eq!(
            IdempotencyKey::of_step_call("a1", 2, 7).as_str(),
            "runboard:a1:2:7"
        );
        assert_eq!(
            IdempotencyKey::pattern("a1", true),
            "runboard:a1:<step>:<call>"
        );
        assert_eq!(IdempotencyKey::pattern("a1", false), "runboard:a1:<call>");
    }
}

//! An action request as a reviewable file, as the console Runboard replaces kept its fixes
//! in pull requests: what `runboard action plan|submit` read, and what the action page
//! offers to download. It is the body of `POST /api/v1/actions`, in TOML, with the
//! submission's incident link.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionFile {
    pub service: String,
    pub mutation: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incident_url: Option<String>,
    /// In place of the list of IDs: `{ error_group = "…" }` or `{ failed_batch_items = "…" }`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selection: Option<Map<String, Value>>,
    /// One key per argument of the mutation; the list of IDs names the entities.
    #[serde(default)]
    pub arguments: Map<String, Value>,
}

impl ActionFile {
    /// Reads a file; an error says where and what to write instead.
    pub fn parse(text: &str) -> Result<Self, String> {
        toml::from_str(text).map_err(|e| {
            format!(
                "{}\nAn action file reads like this:\n{EXAMPLE}",
                e.to_string().trim_end()
            )
        })
    }

    /// The file's text, under a comment that says what it is; TOML has no null, so
    /// arguments left null are left out.
    pub fn to_text(&self, comment: &str) -> String {
        let mut file = self.clone();
        file.arguments.retain(|_, value| !value.is_null());
        let body = toml::to_string(&file).unwrap_or_else(|e| {
            // Only values TOML cannot hold get here (a list of mixed types); say so in the file.
            format!("# this action's arguments cannot be written as TOML: {e}\n")
        });
        let comment: String = comment.lines().map(|line| format!("# {line}\n")).collect();
        format!("{comment}{body}")
    }

    /// The body of `POST /api/v1/actions`.
    pub fn request(&self) -> Value {
        serde_json::json!({
            "service": self.service,
            "mutation": self.mutation,
            "arguments": self.arguments,
            "selection": self.selection,
            "reason": self.reason,
        })
    }
}

const EXAMPLE: &str = r#"  service = "payments"
  mutation = "retrySagas"
  reason = "INC-4711: ledger timeouts; the fix is deployed"
  incident_url = "https://incidents.example.com/INC-4711"   # optional
  [arguments]
  ids = ["…", "…"]
  # or, in place of the IDs:
  # [selection]
  # error_group = "ledger: timeout"           # or failed_batch_items = "<batch id>""#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_round_trips_and_a_bad_one_says_what_to_write() {
        let file = ActionFile {
            service: "payments".into(),
            mutation: "retrySagas".into(),
            reason: Some("INC-4711".into()),
            incident_url: None,
            selection: None,
            arguments: serde_json::from_value(serde_json::json!({
                "ids": ["a", "b"], "note": null, "limit": 3
            }))
            .unwrap(),
        };
        let text = file.to_text("Runboard action 1\nplanned again, the same digest");
        assert!(text.starts_with("# Runboard action 1\n# planned again, the same digest\n"));
        let read = ActionFile::parse(&text).unwrap();
        let mut without_null = file.clone();
        without_null.arguments.remove("note");
        assert_eq!(read, without_null);

        let wrong =
            ActionFile::parse("service = \"payments\"\nmutaton = \"retrySagas\"\n").unwrap_err();
        assert!(wrong.contains("unknown field `mutaton`"), "{wrong}");
        assert!(wrong.contains("mutation = \"retrySagas\""), "{wrong}");
    }
}

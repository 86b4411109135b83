//! An action request as a reviewable file, as the console Runboard replaces kept its fixes
//! in pull requests: what `runboard action plan|submit` read, and what the action page
//! offers to download. It is the body of `POST /api/v1/actions`, in TOML, with the
//! submission's incident link. A runbook is the same file with `name`, `[params]` and
//! `[[steps]]` in place of `mutation` and `[arguments]`; saved runbooks are exported and
//! imported as it (`runboard action save`).

use std::collections::BTreeMap;

use runboard_model::{RunbookStep, ServiceName};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionFile {
    pub service: String,
    /// The mutation of an action of one step; left out for a runbook.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub mutation: String,
    /// A runbook's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// A runbook's description, kept when it is saved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incident_url: Option<String>,
    /// The entities a runbook acts on, when no selection names them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub entities: Vec<String>,
    /// In place of the list of IDs: `{ error_group = "…" }` or `{ failed_batch_items = "…" }`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selection: Option<Map<String, Value>>,
    /// One key per argument of the mutation; the list of IDs names the entities.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub arguments: Map<String, Value>,
    /// A runbook's parameters (`{{ param.reason }}`), the same for every entity.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub params: BTreeMap<String, String>,
    /// A runbook's steps, in the order each entity goes through them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<RunbookStep>,
}

impl ActionFile {
    /// A file for `service` that asks for nothing yet.
    pub fn of_service(service: &ServiceName) -> Self {
        ActionFile {
            service: service.to_string(),
            mutation: String::new(),
            name: None,
            description: None,
            reason: None,
            incident_url: None,
            entities: Vec::new(),
            selection: None,
            arguments: Map::new(),
            params: BTreeMap::new(),
            steps: Vec::new(),
        }
    }

    /// The file of an action's service, reason and link, with nothing asked for yet.
    pub fn asked_of(action: &runboard_model::Action) -> Self {
        ActionFile {
            reason: action.reason.clone(),
            incident_url: action.incident_url.clone(),
            ..Self::of_service(&action.service)
        }
    }

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
        if self.steps.is_empty() {
            return serde_json::json!({
                "service": self.service,
                "mutation": self.mutation,
                "arguments": self.arguments,
                "selection": self.selection,
                "reason": self.reason,
            });
        }
        serde_json::json!({
            "service": self.service,
            "name": self.name,
            "steps": self.steps,
            "params": self.params,
            "entities": self.entities,
            "selection": self.selection,
            "reason": self.reason,
        })
    }

    /// The body of `POST /api/v1/runbooks`: the runbook to save, without its entities.
    pub fn runbook(&self) -> Result<Value, String> {
        if self.steps.is_empty() {
            return Err("the file has no [[steps]]: only a runbook can be saved".into());
        }
        Ok(serde_json::json!({
            "service": self.service,
            "name": self.name.clone().unwrap_or_default(),
            "description": self.description.clone().unwrap_or_default(),
            "steps": self.steps,
        }))
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
  # error_group = "ledger: timeout"           # or failed_batch_items = "<batch id>"
A runbook names its steps in place of the mutation; each entity fills in the placeholders:
  service = "payments"
  name = "Transfer the held funds and force-complete"
  entities = ["…", "…"]                       # or [selection] as above
  [params]
  reason = "INC-4711: ledger rejected postings"
  [[steps]]
  title = "Transfer the held funds"
  mutation = "transferFunds"
  arguments = { fromAccount = "{{ facts.from_account }}", toAccount = "{{ facts.to_account }}", amount = "{{ funds.amount }}", currency = "{{ funds.currency }}", reference = "RB-{{ entity.id }}" }
  [[steps]]
  title = "Force-complete the saga"
  mutation = "forceCompleteSagas"
  arguments = { reason = "{{ param.reason }}" }"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_round_trips_and_a_bad_one_says_what_to_write() {
        let file = ActionFile {
            service: "payments".into(),
            mutation: "retrySagas".into(),
            name: None,
            description: None,
            reason: Some("INC-4711".into()),
            incident_url: None,
            entities: Vec::new(),
            selection: None,
            arguments: serde_json::from_value(serde_json::json!({
                "ids": ["a", "b"], "note": null, "limit": 3
            }))
            .unwrap(),
            params: BTreeMap::new(),
            steps: Vec::new(),
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

    #[test]
    fn a_runbook_file_round_trips_with_its_steps_and_parameters() {
        let file = ActionFile {
            service: "payments".into(),
            mutation: String::new(),
            name: Some("Transfer the held funds and force-complete".into()),
            description: Some("For transfers the ledger refused".into()),
            reason: None,
            incident_url: None,
            entities: vec!["t-1".into(), "t-2".into()],
            selection: None,
            arguments: Map::new(),
            params: [("reason".to_owned(), "INC-7".to_owned())].into(),
            steps: vec![
                RunbookStep {
                    title: "Transfer the held funds".into(),
                    mutation: "transferFunds".into(),
                    arguments: serde_json::json!({
                        "amount": "{{ funds.amount }}", "reference": "RB-{{ entity.id }}"
                    }),
                },
                RunbookStep {
                    title: "Force-complete the saga".into(),
                    mutation: "forceCompleteSagas".into(),
                    arguments: serde_json::json!({ "reason": "{{ param.reason }}" }),
                },
            ],
        };
        let text = file.to_text("a runbook");
        assert!(text.contains("[[steps]]"), "{text}");
        assert_eq!(ActionFile::parse(&text).unwrap(), file);
        let request = file.request();
        assert_eq!(request["steps"][1]["mutation"], "forceCompleteSagas");
        assert_eq!(request["entities"], serde_json::json!(["t-1", "t-2"]));
        assert!(request.get("mutation").is_none(), "{request}");
        // The example a refusal shows is itself a file that reads.
        let example: String = EXAMPLE
            .lines()
            .skip_while(|l| !l.starts_with("A runbook"))
            .skip(1)
            .map(|l| format!("{}\n", l.trim_start()))
            .collect();
        let read = ActionFile::parse(&example).unwrap();
        assert_eq!(read.steps.len(), 2);
    }
}

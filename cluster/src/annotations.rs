//! What a labelled Service's annotations say about it, read strictly: a wrong or unknown
//! annotation names itself and what was expected, and leaves that Service out alone.

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::api::core::v1::Service;
use runboard_core::config::{ServiceConfig, ServiceConfigProblem};
use runboard_model::ServiceName;
use url::Url;

/// The label that makes a Service one of Runboard's; its value is the name Runboard gives
/// it (the Service's own name where the value is empty).
pub const LABEL: &str = "runboard.io/service";

const TEAM: &str = "runboard.io/team";
const DATABASE_SECRET: &str = "runboard.io/database-secret";
const DATABASE_SECRET_KEY: &str = "runboard.io/database-secret-key";
const MISSION_CONTROL_PORT: &str = "runboard.io/mission-control-port";
const MISSION_CONTROL_PATH: &str = "runboard.io/mission-control-path";
const STUCK_AFTER: &str = "runboard.io/stuck-after";
const ID_PATTERN: &str = "runboard.io/id-pattern";
const APPROVALS: &str = "runboard.io/approvals";
const CHUNK_SIZE: &str = "runboard.io/chunk-size";
const TOKEN_AUDIENCE: &str = "runboard.io/token-audience";
/// The contract's relations, each `runboard.io/query.<relation>` (SPEC.md, "The service
/// contract"), with the config file's field it stands for.
const QUERIES: [(&str, &str); 6] = [
    ("runboard.io/query.supervisor-view", "supervisor_view"),
    ("runboard.io/query.batch-run", "batch_run"),
    ("runboard.io/query.batch-item", "batch_item"),
    ("runboard.io/query.withheld-funds", "withheld_funds"),
    ("runboard.io/query.saga-events", "saga_events"),
    ("runboard.io/query.entity-facts", "entity_facts"),
];
const KNOWN: [&str; 10] = [
    TEAM,
    DATABASE_SECRET,
    DATABASE_SECRET_KEY,
    MISSION_CONTROL_PORT,
    MISSION_CONTROL_PATH,
    STUCK_AFTER,
    ID_PATTERN,
    APPROVALS,
    CHUNK_SIZE,
    TOKEN_AUDIENCE,
];

/// The key of the Secret holding the database URL where the annotations name none.
const DEFAULT_SECRET_KEY: &str = "database_url";

/// A Service's settings as its annotations give them; the database URL is still in its
/// Secret.
pub(crate) struct Described {
    pub service: ServiceConfig,
    /// The Secret, in the Service's namespace, that holds the database URL.
    pub secret: String,
    pub secret_key: String,
}

/// What is wrong with one Service's annotations (or its label, or its Secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Problem {
    /// The annotation or label at fault.
    pub key: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

fn problem<T>(key: &str, message: impl Into<String>) -> Result<T, Problem> {
    Err(Problem {
        key: key.into(),
        message: message.into(),
    })
}

/// Reads a labelled Service's annotations into its settings.
pub(crate) fn describe(service: &Service) -> Result<Described, Problem> {
    let meta = &service.metadata;
    let namespace = meta.namespace.as_deref().unwrap_or("default");
    let own_name = meta.name.as_deref().unwrap_or_default();
    let labelled = meta
        .labels
        .as_ref()
        .and_then(|labels| labels.get(LABEL))
        .map(String::as_str)
        .unwrap_or_default();
    let name: ServiceName = match if labelled.is_empty() {
        own_name
    } else {
        labelled
    }
    .parse()
    {
        Ok(name) => name,
        Err(e) => return problem(LABEL, e.to_string()),
    };
    let empty = BTreeMap::new();
    let annotations = meta.annotations.as_ref().unwrap_or(&empty);
    if let Some(unknown) = annotations.keys().find(|key| {
        key.starts_with("runboard.io/")
            && !KNOWN.contains(&key.as_str())
            && !QUERIES.iter().any(|(q, _)| q == key)
    }) {
        let mut known: Vec<&str> = KNOWN.to_vec();
        known.extend(QUERIES.iter().map(|(q, _)| *q));
        return problem(
            unknown,
            format!(
                "is not an annotation Runboard reads (a typo?); it reads {}",
                known.join(", ")
            ),
        );
    }
    let get = |key: &str| {
        annotations
            .get(key)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
    };
    let Some(team) = get(TEAM) else {
        return problem(TEAM, "is missing: name the team that owns the service");
    };
    let Some(secret) = get(DATABASE_SECRET) else {
        return problem(
            DATABASE_SECRET,
            "is missing: name the Secret in this namespace that holds the read-only database URL",
        );
    };
    let port = mission_control_port(service, get(MISSION_CONTROL_PORT))?;
    let path = get(MISSION_CONTROL_PATH).unwrap_or("/graphql");
    if !path.starts_with('/') {
        return problem(
            MISSION_CONTROL_PATH,
            format!("expected a path such as /graphql, got {path:?}"),
        );
    }
    let graphql_url = match Url::parse(&format!("http://{own_name}.{namespace}.svc:{port}{path}")) {
        Ok(url) => url,
        Err(e) => return problem(MISSION_CONTROL_PATH, format!("does not make a URL: {e}")),
    };
    let mut settings = ServiceConfig::new(name, team.into(), String::new(), graphql_url);
    if let Some(text) = get(STUCK_AFTER) {
        settings.stuck_after = match humantime::parse_duration(text) {
            Ok(d) => Some(d),
            Err(e) => {
                return problem(
                    STUCK_AFTER,
                    format!("expected a duration such as 15m or 2h, got {text:?} ({e})"),
                );
            }
        };
    }
    settings.id_pattern = get(ID_PATTERN).map(Into::into);
    settings.token_audience = get(TOKEN_AUDIENCE).map(Into::into);
    if let Some(text) = get(APPROVALS) {
        settings.approvals = per_mutation(APPROVALS, text)?;
    }
    if let Some(text) = get(CHUNK_SIZE) {
        settings.chunk_size = per_mutation(CHUNK_SIZE, text)?;
    }
    for (key, field) in QUERIES {
        let Some(query) = get(key) else { continue };
        let queries = &mut settings.queries;
        match field {
            "supervisor_view" => queries.supervisor_view = query.into(),
            "batch_run" => queries.batch_run = query.into(),
            "batch_item" => queries.batch_item = query.into(),
            "withheld_funds" => queries.withheld_funds = Some(query.into()),
            "saga_events" => queries.saga_events = Some(query.into()),
            _ => queries.entity_facts = Some(query.into()),
        }
    }
    Ok(Described {
        service: settings,
        secret: secret.into(),
        secret_key: get(DATABASE_SECRET_KEY)
            .unwrap_or(DEFAULT_SECRET_KEY)
            .into(),
    })
}

/// The annotation a problem of the settings' `field` is about.
pub(crate) fn annotation_of(problem: ServiceConfigProblem) -> Problem {
    let field = problem.field.as_str();
    let key = match field.split('.').next().unwrap_or(field) {
        "team" => TEAM,
        "graphql_url" => MISSION_CONTROL_PATH,
        "database_url" => DATABASE_SECRET_KEY,
        "token_audience" => TOKEN_AUDIENCE,
        "stuck_after" => STUCK_AFTER,
        "approvals" => APPROVALS,
        "chunk_size" => CHUNK_SIZE,
        "id_pattern" => ID_PATTERN,
        "queries" => QUERIES
            .iter()
            .find(|(_, f)| field.strip_prefix("queries.") == Some(f))
            .map_or(field, |(key, _)| key),
        _ => field,
    };
    Problem {
        key: key.into(),
        message: problem.message,
    }
}

/// The Service's port that mission control listens on: the one the annotation names (by
/// number or name), else the one named `mission-control`, else the only one.
fn mission_control_port(service: &Service, named: Option<&str>) -> Result<i32, Problem> {
    let ports = service
        .spec
        .as_ref()
        .and_then(|spec| spec.ports.as_deref())
        .unwrap_or_default();
    let listed = || {
        ports
            .iter()
            .map(|p| match &p.name {
                Some(name) => format!("{name} ({})", p.port),
                None => p.port.to_string(),
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    match named {
        Some(wanted) => ports
            .iter()
            .find(|p| p.name.as_deref() == Some(wanted) || p.port.to_string() == wanted)
            .map(|p| p.port)
            .map_or_else(
                || {
                    problem(
                        MISSION_CONTROL_PORT,
                        format!(
                            "names {wanted:?}, which is not one of the Service's ports ({})",
                            listed()
                        ),
                    )
                },
                Ok,
            ),
        None => {
            if let Some(port) = ports
                .iter()
                .find(|p| p.name.as_deref() == Some("mission-control"))
            {
                return Ok(port.port);
            }
            match ports {
                [only] => Ok(only.port),
                _ => problem(
                    MISSION_CONTROL_PORT,
                    format!(
                        "is missing and the Service has {} ports ({}); name the mission-control port by number or name, or name that port mission-control",
                        ports.len(),
                        listed()
                    ),
                ),
            }
        }
    }
}

/// `mutationA=2, mutationB=3`: a number per mutation name.
fn per_mutation(key: &str, text: &str) -> Result<BTreeMap<String, u32>, Problem> {
    let mut numbers = BTreeMap::new();
    for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let parsed = pair
            .split_once('=')
            .and_then(|(mutation, n)| Some((mutation.trim(), n.trim().parse::<u32>().ok()?)))
            .filter(|(mutation, _)| !mutation.is_empty());
        let Some((mutation, n)) = parsed else {
            return problem(
                key,
                format!(
                    "expected mutation=number pairs separated by commas, such as retrySagas=2, got {pair:?}"
                ),
            );
        };
        numbers.insert(mutation.to_owned(), n);
    }
    Ok(numbers)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{ServicePort, ServiceSpec};
    use kube::api::ObjectMeta;

    fn service(annotations: &[(&str, &str)], ports: &[(Option<&str>, i32)]) -> Service {
        Service {
            metadata: ObjectMeta {
                name: Some("payments-api".into()),
                namespace: Some("payments".into()),
                labels: Some([(LABEL.to_owned(), "payments".to_owned())].into()),
                annotations: Some(
                    annotations
                        .iter()
                        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                        .collect(),
                ),
                ..ObjectMeta::default()
            },
            spec: Some(ServiceSpec {
                ports: Some(
                    ports
                        .iter()
                        .map(|(name, port)| ServicePort {
                            name: name.map(Into::into),
                            port: *port,
                            ..ServicePort::default()
                        })
                        .collect(),
                ),
                ..ServiceSpec::default()
            }),
            ..Service::default()
        }
    }

    const MINIMAL: [(&str, &str); 2] = [(TEAM, "payments"), (DATABASE_SECRET, "payments-db")];

    #[test]
    fn a_minimal_service_is_reached_at_its_cluster_name() {
        let described = describe(&service(&MINIMAL, &[(Some("http"), 8080)])).unwrap();
        assert_eq!(described.service.name.as_str(), "payments");
        assert_eq!(
            described.service.graphql_url.as_str(),
            "http://payments-api.payments.svc:8080/graphql"
        );
        assert_eq!(described.secret, "payments-db");
        assert_eq!(described.secret_key, "database_url");
    }

    #[test]
    fn every_setting_is_read_from_its_annotation() {
        let mut annotations = MINIMAL.to_vec();
        annotations.extend([
            (MISSION_CONTROL_PORT, "admin"),
            (MISSION_CONTROL_PATH, "/mc/graphql"),
            (STUCK_AFTER, "20m"),
            (APPROVALS, "forceCompleteSagas=2, transferFunds=3"),
            (CHUNK_SIZE, "retrySagas=1"),
            (DATABASE_SECRET_KEY, "url"),
            (
                "runboard.io/query.withheld-funds",
                "SELECT saga_id, amount, currency FROM held",
            ),
            (
                "runboard.io/query.saga-events",
                "SELECT saga_id, at, kind, detail FROM history",
            ),
            (
                "runboard.io/query.entity-facts",
                "SELECT saga_id, name, value FROM facts",
            ),
        ]);
        let described = describe(&service(
            &annotations,
            &[(Some("http"), 8080), (Some("admin"), 9090)],
        ))
        .unwrap();
        let settings = &described.service;
        assert_eq!(
            settings.graphql_url.as_str(),
            "http://payments-api.payments.svc:9090/mc/graphql"
        );
        assert_eq!(
            settings.stuck_after,
            Some(std::time::Duration::from_secs(1200))
        );
        assert_eq!(settings.approvals.get("transferFunds"), Some(&3));
        assert_eq!(settings.chunk_size.get("retrySagas"), Some(&1));
        assert_eq!(described.secret_key, "url");
        assert_eq!(
            settings.queries.withheld_funds.as_deref(),
            Some("SELECT saga_id, amount, currency FROM held")
        );
        assert_eq!(
            settings.queries.saga_events.as_deref(),
            Some("SELECT saga_id, at, kind, detail FROM history")
        );
        assert_eq!(
            settings.queries.entity_facts.as_deref(),
            Some("SELECT saga_id, name, value FROM facts")
        );
    }

    #[test]
    fn a_wrong_annotation_names_itself_and_what_was_expected() {
        let mut annotations = MINIMAL.to_vec();
        annotations.push((STUCK_AFTER, "soon"));
        let wrong = describe(&service(&annotations, &[(None, 8080)]))
            .err()
            .unwrap();
        assert_eq!(wrong.key, STUCK_AFTER);
        assert!(wrong.message.contains("expected a duration"), "{wrong}");

        let mut annotations = MINIMAL.to_vec();
        annotations.push(("runboard.io/stuck_after", "15m"));
        let typo = describe(&service(&annotations, &[(None, 8080)]))
            .err()
            .unwrap();
        assert_eq!(typo.key, "runboard.io/stuck_after");
        assert!(typo.message.contains("runboard.io/stuck-after"), "{typo}");

        let mut annotations = MINIMAL.to_vec();
        annotations.push((APPROVALS, "retrySagas"));
        let pairs = describe(&service(&annotations, &[(None, 8080)]))
            .err()
            .unwrap();
        assert_eq!(pairs.key, APPROVALS);
    }

    #[test]
    fn several_ports_need_the_mission_control_one_named() {
        let two = [(Some("http"), 8080), (Some("metrics"), 9100)];
        let missing = describe(&service(&MINIMAL, &two)).err().unwrap();
        assert_eq!(missing.key, MISSION_CONTROL_PORT);
        assert!(
            missing.message.contains("http (8080), metrics (9100)"),
            "{missing}"
        );
        let mut annotations = MINIMAL.to_vec();
        annotations.push((MISSION_CONTROL_PORT, "8080"));
        assert!(describe(&service(&annotations, &two)).is_ok());
    }

    #[test]
    fn a_missing_team_or_secret_is_said() {
        let no_team = describe(&service(&[(DATABASE_SECRET, "db")], &[(None, 80)]))
            .err()
            .unwrap();
        assert_eq!(no_team.key, TEAM);
        let no_secret = describe(&service(&[(TEAM, "t")], &[(None, 80)]))
            .err()
            .unwrap();
        assert_eq!(no_secret.key, DATABASE_SECRET);
    }

    #[test]
    fn a_settings_problem_points_at_its_annotation() {
        let problem = annotation_of(ServiceConfigProblem {
            field: "queries.batch_item".into(),
            message: "must be a single SELECT".into(),
        });
        assert_eq!(problem.key, "runboard.io/query.batch-item");
        let problem = annotation_of(ServiceConfigProblem {
            field: "approvals.retrySagas".into(),
            message: "must be at least 1".into(),
        });
        assert_eq!(problem.key, APPROVALS);
    }

    #[test]
    fn an_annotated_query_that_locks_rows_is_refused_at_its_annotation() {
        let mut annotations = MINIMAL.to_vec();
        annotations.push((
            "runboard.io/query.supervisor-view",
            "SELECT * FROM supervisor_view FOR UPDATE",
        ));
        let mut settings = describe(&service(&annotations, &[(None, 8080)]))
            .unwrap()
            .service;
        // As discovery does once it has read the URL from the Secret.
        settings.database_url = "postgres://runboard@payments-db/payments".to_owned().into();
        let problem = annotation_of(settings.check(false).unwrap_err());
        assert_eq!(problem.key, "runboard.io/query.supervisor-view");
        assert!(
            problem
                .message
                .contains("locks the rows it reads (FOR UPDATE)"),
            "{problem}"
        );
    }
}

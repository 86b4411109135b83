use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A service's name as it appears in URLs, the config and the audit log:
/// lowercase letters, digits and `-`, starting with a letter, at most 63 characters
/// (the shape of a Kubernetes service name, so discovered services fit too).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
// The store reads a name back as it wrote it: only checked names are written.
#[cfg_attr(feature = "sqlx", derive(sqlx::Type), sqlx(transparent))]
#[serde(try_from = "String", into = "String")]
pub struct ServiceName(String);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceNameError {
    pub given: String,
}

impl fmt::Display for ServiceNameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?} is not a valid service name: use 1 to 63 lowercase letters, digits or '-', starting with a letter",
            self.given
        )
    }
}

impl std::error::Error for ServiceNameError {}

impl ServiceName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for ServiceName {
    type Err = ServiceNameError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let valid = (1..=63).contains(&s.len())
            && s.starts_with(|c: char| c.is_ascii_lowercase())
            && !s.ends_with('-')
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if valid {
            Ok(Self(s.to_owned()))
        } else {
            Err(ServiceNameError {
                given: s.to_owned(),
            })
        }
    }
}

impl TryFrom<String> for ServiceName {
    type Error = ServiceNameError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        value.parse()
    }
}

impl From<ServiceName> for String {
    fn from(name: ServiceName) -> Self {
        name.0
    }
}

impl fmt::Display for ServiceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where Runboard learned of a service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ServiceSource {
    /// An entry of Runboard's config file.
    Config,
    /// A Kubernetes Service labelled `runboard.io/service`.
    Cluster { namespace: String, name: String },
}

impl ServiceSource {
    /// The store's word for it: `config`, or `cluster:<namespace>/<name>`.
    pub fn stored(&self) -> String {
        match self {
            Self::Config => "config".into(),
            Self::Cluster { namespace, name } => format!("cluster:{namespace}/{name}"),
        }
    }

    /// Reads [`Self::stored`] back.
    pub fn from_stored(text: &str) -> Result<Self, UnknownSource> {
        if text == "config" {
            return Ok(Self::Config);
        }
        let (namespace, name) = text
            .strip_prefix("cluster:")
            .and_then(|rest| rest.split_once('/'))
            .ok_or_else(|| UnknownSource(text.to_owned()))?;
        Ok(Self::Cluster {
            namespace: namespace.into(),
            name: name.into(),
        })
    }
}

/// A stored source that is neither `config` nor `cluster:<namespace>/<name>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownSource(pub String);

impl fmt::Display for UnknownSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} is not a service source", self.0)
    }
}

impl std::error::Error for UnknownSource {}

impl fmt::Display for ServiceSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Config => f.write_str("config file"),
            Self::Cluster { namespace, name } => write!(f, "cluster: {namespace}/{name}"),
        }
    }
}

/// What discovery has to say about one Kubernetes Service: an annotation that is wrong,
/// or a Service the config file wins over.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DiscoveryNote {
    /// `<namespace>/<name>` of the Kubernetes Service; empty where the note is about the
    /// cluster as a whole (its API cannot be reached, say).
    pub origin: String,
    pub message: String,
    /// Whether the Service is left out until it is fixed (a note, not a problem, otherwise).
    pub left_out: bool,
}

/// A service as the registry knows it: who owns it and where its mission control is.
/// Its database URL is deliberately absent: it carries credentials and never leaves the server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RegisteredService {
    pub name: ServiceName,
    pub team: String,
    pub graphql_url: String,
    /// A saga with no progress for this long counts as stuck.
    pub stuck_after_seconds: i64,
    /// When Runboard first saw this service, UTC.
    pub registered_at: DateTime<Utc>,
    pub source: ServiceSource,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_source_reads_back_as_stored() {
        for source in [
            ServiceSource::Config,
            ServiceSource::Cluster {
                namespace: "payments".into(),
                name: "payments-api".into(),
            },
        ] {
            assert_eq!(ServiceSource::from_stored(&source.stored()), Ok(source));
        }
        assert!(ServiceSource::from_stored("cluster:no-slash").is_err());
    }

    #[test]
    fn accepts_kubernetes_style_names() {
        for name in ["payments", "ledger-2", "a"] {
            assert_eq!(name.parse::<ServiceName>().unwrap().as_str(), name);
        }
    }

    #[test]
    fn rejects_names_that_would_break_urls_or_kubernetes() {
        for name in [
            "",
            "Payments",
            "2fa",
            "pay ments",
            "pay/ments",
            "pay-",
            &"x".repeat(64),
        ] {
            let err = name.parse::<ServiceName>().unwrap_err();
            assert!(
                err.to_string().contains("not a valid service name"),
                "{err}"
            );
        }
    }
}

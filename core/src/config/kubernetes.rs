//! Discovery of services in Kubernetes (`[kubernetes]`): where to look, how to reach what is
//! found, and what a namespace's Services may ask for.

use std::time::Duration;

use serde::Deserialize;

/// Discovery of services in Kubernetes: Services labelled `runboard.io/service` become
/// registered services, described by their annotations.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KubernetesConfig {
    /// Off unless asked for: a Runboard outside a cluster has no API server to ask.
    #[serde(default)]
    pub discover: bool,
    /// The namespaces to watch; none watches every namespace the service account may read.
    #[serde(default)]
    pub namespaces: Vec<String>,
    /// The kubeconfig context to use outside a cluster (its current context otherwise).
    #[serde(default)]
    pub context: Option<String>,
    /// How the services found are reached.
    #[serde(default)]
    pub reach: Reach,
    /// How often the Secrets named by the labelled Services are read again, so that a
    /// rotated Secret is used without a restart (Runboard may only `get` named Secrets, so
    /// it cannot watch them).
    #[serde(default = "KubernetesConfig::default_resync", with = "humantime_serde")]
    pub resync: Duration,
    /// What a namespace's Services may ask for in their annotations.
    #[serde(default)]
    pub policy: KubernetesPolicy,
}

impl Default for KubernetesConfig {
    fn default() -> Self {
        Self {
            discover: false,
            namespaces: Vec::new(),
            context: None,
            reach: Reach::default(),
            resync: Self::default_resync(),
            policy: KubernetesPolicy::default(),
        }
    }
}

impl KubernetesConfig {
    fn default_resync() -> Duration {
        Duration::from_secs(30)
    }
}

/// The platform's answer to what a tenant's annotations ask for: a Service's annotations
/// are requests, not facts. A namespace not listed may ask for no token audience and for
/// any team.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KubernetesPolicy {
    #[serde(default)]
    pub namespace: Vec<NamespacePolicy>,
}

/// What the Services of one namespace may ask for.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NamespacePolicy {
    pub name: String,
    /// The `runboard.io/token-audience` values it may ask for: Runboard's provider tokens
    /// for these audiences are sent to its pods. None unless listed.
    #[serde(default)]
    pub token_audiences: Vec<String>,
    /// The `runboard.io/team` values it may name (a team's alerts go to its webhook);
    /// absent: any team.
    #[serde(default)]
    pub teams: Option<Vec<String>>,
}

impl KubernetesPolicy {
    /// Why a Service in `namespace` may not ask for this team or token audience, if it may not.
    pub fn refuses(
        &self,
        namespace: &str,
        team: &str,
        token_audience: Option<&str>,
    ) -> Option<String> {
        let policy = self.namespace.iter().find(|p| p.name == namespace);
        if let Some(audience) = token_audience
            && !policy.is_some_and(|p| p.token_audiences.iter().any(|a| a == audience))
        {
            return Some(format!(
                "asks for the token audience {audience:?}, which the policy does not allow namespace {namespace}; a platform admin adds it to that namespace's token_audiences in [kubernetes.policy] if the namespace owns it"
            ));
        }
        if let Some(teams) = policy.and_then(|p| p.teams.as_ref())
            && !teams.iter().any(|t| t == team)
        {
            return Some(format!(
                "names the team {team:?}, which the policy does not allow namespace {namespace} (it allows {}); name one of those",
                teams.join(", ")
            ));
        }
        None
    }
}

/// How Runboard reaches the databases and mission controls of the services it finds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reach {
    /// From a pod: at the Services' cluster DNS names.
    #[default]
    InCluster,
    /// From an engineer's laptop: through the API server's port-forward to a ready pod
    /// behind each Service, bridged to a loopback port.
    PortForward,
}

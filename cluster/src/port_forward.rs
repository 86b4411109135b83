//! Port-forward reach, for Runboard on an engineer's laptop: each Service it needs (a
//! service's mission control, its database) is bridged to a loopback port, and every
//! connection to that port goes through the API server's port-forward to a ready pod behind
//! the Service, picked afresh, so a pod that goes away is replaced by another ready one on
//! the next connection. sqlx and reqwest connect to the loopback port as to any other.

use std::collections::HashMap;
use std::net::SocketAddr;

use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::ListParams;
use kube::{Api, Client};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Mutex;
use url::Url;

/// A Service's port, as a URL in the cluster names it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Target {
    namespace: String,
    service: String,
    port: u16,
}

/// A loopback listener forwarding to one Service's port; closed when dropped.
struct Bridge {
    local: SocketAddr,
    accepting: tokio::task::JoinHandle<()>,
}

impl Drop for Bridge {
    fn drop(&mut self) {
        self.accepting.abort();
    }
}

/// The bridges open, one per Service port, kept while Runboard runs.
pub(crate) struct Bridges {
    client: Client,
    open: Mutex<HashMap<Target, Bridge>>,
}

impl Bridges {
    pub(crate) fn new(client: Client) -> Self {
        Self {
            client,
            open: Mutex::default(),
        }
    }

    /// `url` with its host and port replaced by the loopback bridge to the Service it
    /// names, where it names one in the cluster (`name`, `name.namespace`,
    /// `name.namespace.svc[.cluster.local]`); any other host is left as it is.
    pub(crate) async fn reach(&self, url: &Url, namespace: &str) -> Result<Url, String> {
        let Some(host) = url.host_str() else {
            return Ok(url.clone());
        };
        let labels: Vec<&str> = host.split('.').collect();
        let in_cluster = match labels.as_slice() {
            [_] | [_, _] => true,
            [_, _, "svc", rest @ ..] => rest.is_empty() || rest == ["cluster", "local"],
            _ => false,
        };
        if !in_cluster || host.parse::<std::net::IpAddr>().is_ok() || host == "localhost" {
            return Ok(url.clone());
        }
        let Some(port) = url.port_or_known_default().or(match url.scheme() {
            "postgres" | "postgresql" => Some(5432),
            "mysql" | "mariadb" => Some(3306),
            _ => None,
        }) else {
            return Err(format!("{host} is named without a port"));
        };
        let target = Target {
            namespace: labels.get(1).copied().unwrap_or(namespace).to_owned(),
            service: labels[0].to_owned(),
            port,
        };
        let local = self.bridge(target).await?;
        let mut reached = url.clone();
        reached
            .set_host(Some("127.0.0.1"))
            .and_then(|()| {
                reached
                    .set_port(Some(local.port()))
                    .map_err(|()| url::ParseError::InvalidPort)
            })
            .map_err(|e| format!("{url} cannot be pointed at the bridge: {e}"))?;
        Ok(reached)
    }

    async fn bridge(&self, target: Target) -> Result<SocketAddr, String> {
        let mut open = self.open.lock().await;
        if let Some(bridge) = open.get(&target) {
            return Ok(bridge.local);
        }
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| format!("no loopback port for a bridge: {e}"))?;
        let local = listener
            .local_addr()
            .map_err(|e| format!("no loopback port for a bridge: {e}"))?;
        tracing::info!(
            namespace = %target.namespace, service = %target.service, port = target.port, %local,
            "port-forward bridge open"
        );
        let accepting = tokio::spawn(accept(listener, self.client.clone(), target.clone()));
        open.insert(target, Bridge { local, accepting });
        Ok(local)
    }
}

async fn accept(listener: TcpListener, client: Client, target: Target) {
    loop {
        let Ok((connection, _)) = listener.accept().await else {
            continue;
        };
        let (client, target) = (client.clone(), target.clone());
        tokio::spawn(async move {
            if let Err(problem) = forward(connection, &client, &target).await {
                // The connection closes; whoever opened it reads the service as unreachable.
                tracing::warn!(
                    namespace = %target.namespace, service = %target.service, port = target.port,
                    %problem, "port-forward failed"
                );
            }
        });
    }
}

/// Carries one connection to a ready pod behind the Service, until either side closes.
async fn forward(
    mut connection: TcpStream,
    client: &Client,
    target: &Target,
) -> Result<(), String> {
    let (pod, pod_port) = ready_pod(client, target).await?;
    let mut forwarder = Api::<Pod>::namespaced(client.clone(), &target.namespace)
        .portforward(&pod, &[pod_port])
        .await
        .map_err(|e| format!("port-forward to pod {pod} refused: {e}"))?;
    let mut upstream = forwarder
        .take_stream(pod_port)
        .ok_or("the port-forward gave no stream")?;
    tokio::io::copy_bidirectional(&mut connection, &mut upstream)
        .await
        .map_err(|e| format!("connection through pod {pod} cut: {e}"))?;
    Ok(())
}

/// The first ready pod behind the Service (from its EndpointSlices), and the pod's port
/// that the Service's port leads to.
async fn ready_pod(client: &Client, target: &Target) -> Result<(String, u16), String> {
    let service = Api::<Service>::namespaced(client.clone(), &target.namespace)
        .get(&target.service)
        .await
        .map_err(|e| format!("Service {}/{}: {e}", target.namespace, target.service))?;
    let port_name = service
        .spec
        .and_then(|spec| spec.ports)
        .unwrap_or_default()
        .into_iter()
        .find(|p| i64::from(p.port) == i64::from(target.port))
        .ok_or_else(|| {
            format!(
                "Service {}/{} has no port {}",
                target.namespace, target.service, target.port
            )
        })?
        .name;
    let slices = Api::<EndpointSlice>::namespaced(client.clone(), &target.namespace)
        .list(
            &ListParams::default()
                .labels(&format!("kubernetes.io/service-name={}", target.service)),
        )
        .await
        .map_err(|e| {
            format!(
                "EndpointSlices of {}/{}: {e}",
                target.namespace, target.service
            )
        })?;
    for slice in slices {
        let Some(pod_port) = slice
            .ports
            .unwrap_or_default()
            .into_iter()
            .find(|p| p.name == port_name)
            .and_then(|p| p.port)
            .and_then(|p| u16::try_from(p).ok())
        else {
            continue;
        };
        let ready = slice.endpoints.into_iter().find(|e| {
            e.conditions.as_ref().and_then(|c| c.ready) != Some(false)
                && e.target_ref.as_ref().and_then(|r| r.kind.as_deref()) == Some("Pod")
        });
        if let Some(pod) = ready.and_then(|e| e.target_ref).and_then(|r| r.name) {
            return Ok((pod, pod_port));
        }
    }
    Err(format!(
        "no ready pod behind Service {}/{}",
        target.namespace, target.service
    ))
}

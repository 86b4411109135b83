//! A Kubernetes API server for tests, on a loopback port: it keeps Services and Secrets as
//! JSON and answers what Runboard's client asks — lists, watches from a resource version
//! (newline-delimited events, streamed as they happen) and gets — as the real one does.
//! Its pods are addresses on this machine: their EndpointSlices are made from them, and a
//! port-forward to one speaks the `v4.channel.k8s.io` WebSocket framing and connects to
//! the address behind the pod's port. A pod can be killed, cutting its connections.
//! Where a real API server's behaviour matters to a client it behaves so: it can refuse a
//! verb on a resource in a namespace (403), answer a watch from a compacted resource
//! version with 410 Gone (the client must list again), send bookmarks to watches that
//! allow them, and fail or delay the reads of a Secret.
//! A stand-in, since no cluster can run here; the client, watcher and reflector talking to
//! it over HTTP are the real ones.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine;
use serde_json::{Value, json};
use tokio::sync::watch;

mod listing;
mod port_forward;

/// Where an object lives: namespace and name.
type Key = (String, String);

#[derive(Default)]
struct Objects {
    /// The cluster's clock: every change gets the next resource version.
    version: u64,
    services: BTreeMap<Key, Value>,
    secrets: BTreeMap<Key, Value>,
    /// Every change to a Service, for watches that start from an older version.
    history: Vec<(u64, &'static str, Value)>,
    /// Secrets read, by `namespace/name`, in order.
    secrets_read: Vec<String>,
    pods: BTreeMap<Key, FakePod>,
    /// Verbs refused (403), as (verb, resource, namespace); `None`: cluster-wide.
    forbidden: BTreeSet<(String, String, Option<String>)>,
    /// Watches from a resource version below this answer 410 Gone: their history is gone.
    compacted: u64,
    /// Each Secret's reads still to fail, with the status they fail with.
    failing_secrets: BTreeMap<Key, (u32, StatusCode)>,
    /// How long each Secret's reads take.
    slow_secrets: BTreeMap<Key, Duration>,
    /// What the server answered, for tests to see that the client went through it.
    answered: Answered,
}

/// Counts of answers a real API server gives now and then.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Answered {
    pub lists: u32,
    pub forbidden: u32,
    pub gone: u32,
    pub bookmarks: u32,
}

/// A pod behind a Service: where each of its ports really is, and its open port-forwards.
struct FakePod {
    service: String,
    ports: BTreeMap<u16, std::net::SocketAddr>,
    forwards: Vec<tokio::task::AbortHandle>,
}

struct Shared {
    objects: Mutex<Objects>,
    /// The newest resource version, for watches waiting on the next change.
    changed: watch::Sender<u64>,
    /// The history compacted so far: open watches end with 410 Gone when it grows.
    expired: watch::Sender<u64>,
}

pub struct FakeKubernetes {
    url: String,
    shared: Arc<Shared>,
    server: tokio::task::JoinHandle<()>,
}

impl FakeKubernetes {
    pub async fn start() -> Self {
        let shared = Arc::new(Shared {
            objects: Mutex::default(),
            changed: watch::channel(0).0,
            expired: watch::channel(0).0,
        });
        let router = Router::new()
            .route("/api/v1/services", get(services))
            .route("/api/v1/namespaces/{namespace}/services", get(services_in))
            .route("/api/v1/namespaces/{namespace}/secrets/{name}", get(secret))
            .route(
                "/api/v1/namespaces/{namespace}/services/{name}",
                get(one_service),
            )
            .route(
                "/apis/discovery.k8s.io/v1/namespaces/{namespace}/endpointslices",
                get(endpoint_slices),
            )
            .route(
                "/api/v1/namespaces/{namespace}/pods/{name}/portforward",
                get(port_forward::port_forward),
            )
            .fallback(|| async { status(StatusCode::NOT_FOUND, "NotFound", "no such path") })
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            axum::serve(listener, router).await.unwrap();
        });
        Self {
            url,
            shared,
            server,
        }
    }

    /// The API server's base URL, as a kubeconfig's `server`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Creates or replaces a Service (a JSON object with metadata.namespace and name).
    pub fn apply_service(&self, mut service: Value) {
        let key = key_of(&service);
        let mut objects = self.shared.objects.lock().unwrap();
        objects.version += 1;
        let version = objects.version;
        service["metadata"]["resourceVersion"] = json!(version.to_string());
        service["apiVersion"] = json!("v1");
        service["kind"] = json!("Service");
        let kind = if objects.services.contains_key(&key) {
            "MODIFIED"
        } else {
            "ADDED"
        };
        objects.services.insert(key, service.clone());
        objects.history.push((version, kind, service));
        drop(objects);
        self.shared.changed.send_replace(version);
    }

    pub fn delete_service(&self, namespace: &str, name: &str) {
        let mut objects = self.shared.objects.lock().unwrap();
        let Some(mut service) = objects.services.remove(&(namespace.into(), name.into())) else {
            return;
        };
        objects.version += 1;
        let version = objects.version;
        service["metadata"]["resourceVersion"] = json!(version.to_string());
        objects.history.push((version, "DELETED", service));
        drop(objects);
        self.shared.changed.send_replace(version);
    }

    /// Creates or replaces an Opaque Secret with these string values.
    pub fn apply_secret(&self, namespace: &str, name: &str, data: &[(&str, &str)]) {
        let mut objects = self.shared.objects.lock().unwrap();
        objects.version += 1;
        let encoded: serde_json::Map<String, Value> = data
            .iter()
            .map(|(k, v)| {
                (
                    (*k).to_owned(),
                    json!(base64::engine::general_purpose::STANDARD.encode(v)),
                )
            })
            .collect();
        let secret = json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "Opaque",
            "metadata": {
                "namespace": namespace,
                "name": name,
                "resourceVersion": objects.version.to_string(),
            },
            "data": encoded,
        });
        objects
            .secrets
            .insert((namespace.into(), name.into()), secret);
        let version = objects.version;
        drop(objects);
        // Watches of Services hear of it only through a bookmark.
        self.shared.changed.send_replace(version);
    }

    /// Refuses `verb` ("list", "watch", "get") on `resource` ("services", "secrets") in
    /// `namespace` (`None`: cluster-wide) with 403 Forbidden, as a Role that lacks it does.
    pub fn forbid(&self, verb: &str, resource: &str, namespace: Option<&str>) {
        self.shared.objects.lock().unwrap().forbidden.insert((
            verb.into(),
            resource.into(),
            namespace.map(Into::into),
        ));
    }

    /// Allows again what [`Self::forbid`] refused.
    pub fn allow(&self, verb: &str, resource: &str, namespace: Option<&str>) {
        self.shared.objects.lock().unwrap().forbidden.remove(&(
            verb.into(),
            resource.into(),
            namespace.map(Into::into),
        ));
    }

    /// Compacts the history, as etcd does: every open watch ends with 410 Gone, and so
    /// does any watch from a resource version seen before, so that clients list again.
    /// Changes made here until they do are only seen by listing.
    pub fn expire_watches(&self) {
        let mut objects = self.shared.objects.lock().unwrap();
        // A change elsewhere in the cluster moves the version past what anyone has seen.
        objects.version += 1;
        objects.compacted = objects.version;
        objects.history.clear();
        let compacted = objects.compacted;
        drop(objects);
        self.shared.expired.send_replace(compacted);
    }

    /// Makes the next `times` reads of a Secret fail with `code` (500, 503, 403...).
    pub fn fail_secret_reads(&self, namespace: &str, name: &str, times: u32, code: u16) {
        let code = StatusCode::from_u16(code).expect("an HTTP status");
        self.shared
            .objects
            .lock()
            .unwrap()
            .failing_secrets
            .insert((namespace.into(), name.into()), (times, code));
    }

    /// Makes every read of a Secret take `delay` (`Duration::ZERO` for none).
    pub fn slow_secret_reads(&self, namespace: &str, name: &str, delay: Duration) {
        self.shared
            .objects
            .lock()
            .unwrap()
            .slow_secrets
            .insert((namespace.into(), name.into()), delay);
    }

    /// What the server has answered so far.
    pub fn answered(&self) -> Answered {
        self.shared.objects.lock().unwrap().answered.clone()
    }

    /// Starts a ready pod behind the Service `service`: each pod port leads to an address
    /// on this machine.
    pub fn start_pod(
        &self,
        namespace: &str,
        name: &str,
        service: &str,
        ports: &[(u16, std::net::SocketAddr)],
    ) {
        self.shared.objects.lock().unwrap().pods.insert(
            (namespace.into(), name.into()),
            FakePod {
                service: service.into(),
                ports: ports.iter().copied().collect(),
                forwards: Vec::new(),
            },
        );
    }

    /// Kills a pod: it leaves its Service's endpoints and every connection through it is cut.
    pub fn kill_pod(&self, namespace: &str, name: &str) {
        let pod = self
            .shared
            .objects
            .lock()
            .unwrap()
            .pods
            .remove(&(namespace.into(), name.into()));
        for forward in pod.map(|p| p.forwards).unwrap_or_default() {
            forward.abort();
        }
    }

    /// The Secrets read so far, as `namespace/name`, in order.
    pub fn secrets_read(&self) -> Vec<String> {
        self.shared.objects.lock().unwrap().secrets_read.clone()
    }
}

impl Drop for FakeKubernetes {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn key_of(object: &Value) -> Key {
    let meta = &object["metadata"];
    (
        meta["namespace"].as_str().unwrap_or("default").to_owned(),
        meta["name"]
            .as_str()
            .expect("an object has a name")
            .to_owned(),
    )
}

/// A Kubernetes `Status` answer, as the client reads errors.
fn status(code: StatusCode, reason: &str, message: &str) -> Response {
    let body = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {},
        "status": "Failure", "message": message, "reason": reason, "code": code.as_u16(),
    });
    (code, axum::Json(body)).into_response()
}

async fn services(
    State(shared): State<Arc<Shared>>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    listing::list_or_watch(shared, None, query)
}

async fn services_in(
    State(shared): State<Arc<Shared>>,
    Path(namespace): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    listing::list_or_watch(shared, Some(namespace), query)
}

async fn secret(
    State(shared): State<Arc<Shared>>,
    Path((namespace, name)): Path<(String, String)>,
) -> Response {
    let key = (namespace.clone(), name.clone());
    let delay = {
        let mut objects = shared.objects.lock().unwrap();
        objects.secrets_read.push(format!("{namespace}/{name}"));
        if let Some(refused) = objects.refuse("get", "secrets", Some(&namespace)) {
            return refused;
        }
        if let Some((left, code)) = objects.failing_secrets.get_mut(&key)
            && *left > 0
        {
            *left -= 1;
            let code = *code;
            return status(code, "InternalError", "etcdserver: request timed out");
        }
        objects.slow_secrets.get(&key).copied().unwrap_or_default()
    };
    tokio::time::sleep(delay).await;
    let objects = shared.objects.lock().unwrap();
    match objects.secrets.get(&key) {
        Some(secret) => axum::Json(secret.clone()).into_response(),
        None => status(
            StatusCode::NOT_FOUND,
            "NotFound",
            &format!("secrets \"{name}\" not found"),
        ),
    }
}

impl Objects {
    /// The 403 a real API server gives a service account whose Role lacks the verb.
    fn refuse(&mut self, verb: &str, resource: &str, namespace: Option<&str>) -> Option<Response> {
        let key = (
            verb.to_owned(),
            resource.to_owned(),
            namespace.map(Into::into),
        );
        if !self.forbidden.contains(&key) {
            return None;
        }
        self.answered.forbidden += 1;
        let scope = namespace.map_or("at the cluster scope".to_owned(), |ns| {
            format!("in the namespace \"{ns}\"")
        });
        Some(status(
            StatusCode::FORBIDDEN,
            "Forbidden",
            &format!(
                "{resource} is forbidden: User \"system:serviceaccount:runboard:runboard\" cannot {verb} resource \"{resource}\" in API group \"\" {scope}"
            ),
        ))
    }
}

async fn one_service(
    State(shared): State<Arc<Shared>>,
    Path((namespace, name)): Path<(String, String)>,
) -> Response {
    let objects = shared.objects.lock().unwrap();
    match objects.services.get(&(namespace, name.clone())) {
        Some(service) => axum::Json(service.clone()).into_response(),
        None => status(
            StatusCode::NOT_FOUND,
            "NotFound",
            &format!("services \"{name}\" not found"),
        ),
    }
}

/// One EndpointSlice per Service: its pods, ready, with the Service's ports by name at
/// their target ports.
async fn endpoint_slices(
    State(shared): State<Arc<Shared>>,
    Path(namespace): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let objects = shared.objects.lock().unwrap();
    let selector = query.get("labelSelector").cloned().unwrap_or_default();
    let service = selector
        .strip_prefix("kubernetes.io/service-name=")
        .unwrap_or_default();
    let mut items = Vec::new();
    if let Some(found) = objects
        .services
        .get(&(namespace.clone(), service.to_owned()))
    {
        let ports: Vec<Value> = found["spec"]["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| json!({ "name": p["name"], "port": p["targetPort"], "protocol": "TCP" }))
            .collect();
        let endpoints: Vec<Value> = objects
            .pods
            .iter()
            .filter(|((ns, _), pod)| *ns == namespace && pod.service == service)
            .map(|((ns, name), _)| {
                json!({
                    "addresses": ["10.0.0.1"],
                    "conditions": { "ready": true },
                    "targetRef": { "kind": "Pod", "namespace": ns, "name": name },
                })
            })
            .collect();
        items.push(json!({
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {
                "namespace": namespace, "name": format!("{service}-abcde"),
                "labels": { "kubernetes.io/service-name": service },
            },
            "addressType": "IPv4",
            "endpoints": endpoints,
            "ports": ports,
        }));
    }
    axum::Json(json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSliceList",
        "metadata": { "resourceVersion": objects.version.to_string() },
        "items": items,
    }))
    .into_response()
}

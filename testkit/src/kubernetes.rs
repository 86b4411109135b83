//! A Kubernetes API server for tests, on a loopback port: it keeps Services and Secrets as
//! JSON and answers what Runboard's client asks — lists, watches from a resource version
//! (newline-delimited events, streamed as they happen) and gets — as the real one does.
//! Its pods are addresses on this machine: their EndpointSlices are made from them, and a
//! port-forward to one speaks the `v4.channel.k8s.io` WebSocket framing and connects to
//! the address behind the pod's port. A pod can be killed, cutting its connections.
//! A stand-in, since no cluster can run here; the client, watcher and reflector talking to
//! it over HTTP are the real ones.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine;
use serde_json::{Value, json};
use tokio::sync::watch;

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
                get(port_forward),
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
    list_or_watch(shared, None, query)
}

async fn services_in(
    State(shared): State<Arc<Shared>>,
    Path(namespace): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    list_or_watch(shared, Some(namespace), query)
}

async fn secret(
    State(shared): State<Arc<Shared>>,
    Path((namespace, name)): Path<(String, String)>,
) -> Response {
    let mut objects = shared.objects.lock().unwrap();
    objects.secrets_read.push(format!("{namespace}/{name}"));
    match objects.secrets.get(&(namespace, name.clone())) {
        Some(secret) => axum::Json(secret.clone()).into_response(),
        None => status(
            StatusCode::NOT_FOUND,
            "NotFound",
            &format!("secrets \"{name}\" not found"),
        ),
    }
}

/// Whether `object` is in `namespace` (any, for `None`) and has the selector's labels:
/// `key` or `key=value`, comma-separated, as Runboard sends them.
fn selected(object: &Value, namespace: Option<&str>, selector: &str) -> bool {
    if namespace.is_some_and(|ns| object["metadata"]["namespace"] != json!(ns)) {
        return false;
    }
    let labels = &object["metadata"]["labels"];
    selector
        .split(',')
        .filter(|s| !s.is_empty())
        .all(|term| match term.split_once('=') {
            Some((key, value)) => labels[key] == json!(value),
            None => !labels[term].is_null(),
        })
}

fn list_or_watch(
    shared: Arc<Shared>,
    namespace: Option<String>,
    query: HashMap<String, String>,
) -> Response {
    let selector = query.get("labelSelector").cloned().unwrap_or_default();
    if query.get("watch").is_none_or(|w| w != "true" && w != "1") {
        let objects = shared.objects.lock().unwrap();
        let items: Vec<&Value> = objects
            .services
            .values()
            .filter(|s| selected(s, namespace.as_deref(), &selector))
            .collect();
        return axum::Json(json!({
            "kind": "ServiceList", "apiVersion": "v1",
            "metadata": { "resourceVersion": objects.version.to_string() },
            "items": items,
        }))
        .into_response();
    }
    let since: u64 = query
        .get("resourceVersion")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let changes = shared.changed.subscribe();
    // Each step sends the changes after `seen`, then waits for the next one.
    let events = futures_util::stream::unfold(
        (since, VecDeque::<String>::new(), changes),
        move |(mut seen, mut pending, mut changes)| {
            let shared = shared.clone();
            let namespace = namespace.clone();
            let selector = selector.clone();
            async move {
                loop {
                    if let Some(line) = pending.pop_front() {
                        return Some((Ok::<_, Infallible>(line), (seen, pending, changes)));
                    }
                    {
                        let objects = shared.objects.lock().unwrap();
                        for (version, kind, object) in &objects.history {
                            if *version > seen && selected(object, namespace.as_deref(), &selector)
                            {
                                pending.push_back(format!(
                                    "{}\n",
                                    json!({ "type": kind, "object": object })
                                ));
                            }
                        }
                        seen = objects.version;
                    }
                    if pending.is_empty() && changes.changed().await.is_err() {
                        return None;
                    }
                }
            }
        },
    );
    Response::builder()
        .header("content-type", "application/json")
        .body(Body::from_stream(events))
        .unwrap()
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

/// `pods/portforward` for one port: data on channel 0, errors on channel 1, each opened
/// with the port number (little-endian), as the kubelet does.
async fn port_forward(
    State(shared): State<Arc<Shared>>,
    Path((namespace, name)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
    upgrade: axum::extract::ws::WebSocketUpgrade,
) -> Response {
    let port: Option<u16> = query.get("ports").and_then(|p| p.parse().ok());
    let address = {
        let objects = shared.objects.lock().unwrap();
        let pod = objects.pods.get(&(namespace.clone(), name.clone()));
        match (pod, port) {
            (None, _) => {
                return status(
                    StatusCode::NOT_FOUND,
                    "NotFound",
                    &format!("pods \"{name}\" not found"),
                );
            }
            (Some(pod), Some(port)) => pod.ports.get(&port).copied(),
            (Some(_), None) => None,
        }
    };
    let (Some(port), Some(address)) = (port, address) else {
        return status(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "the pod has no such port",
        );
    };
    upgrade
        .protocols(["v4.channel.k8s.io"])
        .on_upgrade(move |socket| async move {
            let forward = tokio::spawn(carry(socket, port, address));
            match shared
                .objects
                .lock()
                .unwrap()
                .pods
                .get_mut(&(namespace, name))
            {
                Some(pod) => pod.forwards.push(forward.abort_handle()),
                None => forward.abort(),
            }
        })
}

/// Carries the port-forward's channel 0 to and from a connection to `address`.
async fn carry(socket: axum::extract::ws::WebSocket, port: u16, address: std::net::SocketAddr) {
    use axum::extract::ws::Message;
    use futures_util::{SinkExt, StreamExt};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let (mut to_client, mut from_client) = socket.split();
    let [low, high] = port.to_le_bytes();
    for channel in [0, 1] {
        if to_client
            .send(Message::Binary(vec![channel, low, high].into()))
            .await
            .is_err()
        {
            return;
        }
    }
    let Ok(connection) = tokio::net::TcpStream::connect(address).await else {
        let _ = to_client
            .send(Message::Binary(
                [&[1u8][..], b"connection refused"].concat().into(),
            ))
            .await;
        return;
    };
    let (mut reading, mut writing) = connection.into_split();
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        tokio::select! {
            message = from_client.next() => match message {
                Some(Ok(Message::Binary(data))) if data.len() > 1 && data[0] == 0 => {
                    if writing.write_all(&data[1..]).await.is_err() {
                        break;
                    }
                }
                Some(Ok(Message::Close(_)) | Err(_)) | None => break,
                Some(Ok(_)) => {}
            },
            read = reading.read(&mut buffer) => match read {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let mut frame = Vec::with_capacity(n + 1);
                    frame.push(0);
                    frame.extend_from_slice(&buffer[..n]);
                    if to_client.send(Message::Binary(frame.into())).await.is_err() {
                        break;
                    }
                }
            },
        }
    }
    let _ = to_client.send(Message::Close(None)).await;
}

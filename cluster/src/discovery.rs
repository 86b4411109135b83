//! Watches the labelled Services (a watcher feeding a reflector per namespace) and, after
//! each change, makes the fleet and the registry match what the reflectors hold.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use futures_util::{StreamExt, stream};
use k8s_openapi::api::core::v1::{Secret, Service};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use runboard_core::App;
use runboard_core::config::{KubernetesConfig, Reach};
use runboard_core::services::{Discovered, config_wins};
use runboard_core::watches::{Refusal, judge_discovery};
use runboard_model::{DiscoveryNote, ServiceName, ServiceSource};
use secrecy::ExposeSecret;

use crate::annotations::{self, LABEL, Problem};
use crate::port_forward::Bridges;

/// Changes that arrive this close together are applied at once (a `kubectl apply` of many
/// Services, a watch restarting), so that each Secret is read once for them.
const SETTLE: Duration = Duration::from_millis(300);

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error(
        "Runboard cannot find its way to the Kubernetes API ({0}); in a pod it uses its service account, elsewhere KUBECONFIG or ~/.kube/config"
    )]
    Config(String),
    #[error("the Kubernetes client cannot be made: {0}")]
    Client(#[from] kube::Error),
}

/// A client for the cluster: the pod's service account in a pod, else the kubeconfig (its
/// `context` where the config names one).
pub async fn client(config: &KubernetesConfig) -> Result<Client, ClusterError> {
    let settings = match &config.context {
        Some(context) => kube::Config::from_kubeconfig(&kube::config::KubeConfigOptions {
            context: Some(context.clone()),
            ..Default::default()
        })
        .await
        .map_err(|e| ClusterError::Config(e.to_string()))?,
        None => kube::Config::infer()
            .await
            .map_err(|e| ClusterError::Config(e.to_string()))?,
    };
    Ok(Client::try_from(settings)?)
}

/// Keeps the services found in the cluster registered until the process stops. An API
/// that cannot be reached is said on the overview and asked again with backoff; the
/// services found before stay meanwhile. Every `kubernetes.resync` the Secrets are read
/// again, so that a rotated one is used without a change to its Service.
pub async fn discover(app: Arc<App>, client: Client) {
    let namespaces = &app.config.kubernetes.namespaces;
    let apis: Vec<Api<Service>> = if namespaces.is_empty() {
        vec![Api::all(client.clone())]
    } else {
        namespaces
            .iter()
            .map(|ns| Api::namespaced(client.clone(), ns))
            .collect()
    };
    let mut stores = Vec::new();
    let mut watches = Vec::new();
    for (index, api) in apis.into_iter().enumerate() {
        let (reader, writer) = reflector::store();
        stores.push(reader);
        let events = reflector::reflector(
            writer,
            watcher(api, watcher::Config::default().labels(LABEL)),
        )
        .default_backoff()
        .map(move |event| (index, event));
        watches.push(events.boxed());
    }
    let bridges =
        (app.config.kubernetes.reach == Reach::PortForward).then(|| Bridges::new(client.clone()));
    let mut events = stream::select_all(watches);
    let mut resync = tokio::time::interval(app.config.kubernetes.resync);
    resync.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    resync.tick().await;
    // Per watch: listed once, and why it cannot be listed or watched now.
    let mut ready = vec![false; stores.len()];
    let mut failing: Vec<Option<String>> = vec![None; stores.len()];
    let mut last = BTreeMap::new();
    loop {
        let mut changed = false;
        let batch = tokio::select! {
            first = events.next() => {
                let Some(first) = first else { return };
                let mut batch = vec![first];
                // Whatever else arrives while the first change settles is applied with it.
                while let Ok(Some(next)) = tokio::time::timeout(SETTLE, events.next()).await {
                    batch.push(next);
                }
                batch
            }
            _ = resync.tick() => {
                changed = true;
                Vec::new()
            }
        };
        for (index, event) in batch {
            match event {
                Ok(watcher::Event::InitDone) => {
                    ready[index] = true;
                    failing[index] = None;
                    changed = true;
                }
                Ok(watcher::Event::Apply(_) | watcher::Event::Delete(_)) => changed = true,
                Ok(watcher::Event::Init | watcher::Event::InitApply(_)) => {}
                // The API server no longer has the history the watch asked for: the
                // watcher lists again at once, which is no problem to tell anyone of.
                Err(watcher::Error::WatchError(status)) if status.code == 410 => {
                    tracing::debug!(%status, "a watch of the labelled Services expired; listing again");
                }
                Err(error) => {
                    tracing::warn!(%error, "the Kubernetes API cannot be watched");
                    let why = error.to_string();
                    if failing[index].as_ref() != Some(&why) {
                        failing[index] = Some(why);
                        changed = true;
                    }
                }
            }
        }
        let all_namespaces = namespaces.is_empty();
        // The whole cluster unreadable: the services found before stay as they are.
        if all_namespaces && let Some(why) = &failing[0] {
            app.fleet.cluster_unreachable(Some(format!(
                "the Kubernetes API cannot be asked for the labelled Services ({why}); the services found before are kept, and it is asked again"
            )));
            continue;
        }
        // Until every namespace has been listed once or said why not, what is missing may
        // only be unread.
        if changed && (0..stores.len()).all(|i| ready[i] || failing[i].is_some()) {
            app.fleet.cluster_unreachable(None);
            let unreadable: Vec<DiscoveryNote> = namespaces
                .iter()
                .zip(&failing)
                .filter_map(|(namespace, why)| {
                    Some(DiscoveryNote {
                        origin: format!("namespace {namespace}"),
                        message: format!(
                            "its labelled Services cannot be listed or watched ({}); those found there before are kept, and it is asked again. If it says forbidden, Runboard's Role in {namespace} must allow list and watch on services",
                            why.as_ref()?
                        ),
                        left_out: false,
                    })
                })
                .collect();
            sync(
                &app,
                &client,
                bridges.as_ref(),
                &stores,
                &mut last,
                unreadable,
            )
            .await;
        }
    }
}

/// Reads every labelled Service the reflectors hold (and its Secret) into the fleet and
/// the registry; a Service whose annotations or Secret are wrong is left out alone. One
/// that was read before keeps the settings last read (`last`, by namespace and name), and
/// is registered as unreadable with the reason until it reads again.
async fn sync(
    app: &App,
    client: &Client,
    bridges: Option<&Bridges>,
    stores: &[Store<Service>],
    last: &mut BTreeMap<(String, String), Discovered>,
    mut notes: Vec<DiscoveryNote>,
) {
    let mut found = Vec::new();
    let mut refusals = Vec::new();
    let tokens_configured = app.config.mission_control_tokens.is_some();
    let configured = |registered: &ServiceName| {
        app.fleet
            .service(registered)
            .is_some_and(|c| *c.source() == ServiceSource::Config)
    };
    let services: Vec<Arc<Service>> = stores.iter().flat_map(Store::state).collect();
    let reads = services.iter().map(|service| {
        read(
            &app.config.kubernetes,
            client,
            bridges,
            service,
            tokens_configured,
            &configured,
        )
    });
    let mut seen = BTreeMap::new();
    for (service, outcome) in services.iter().zip(join_all(reads).await) {
        let namespace = service.metadata.namespace.clone().unwrap_or_default();
        let name = service.metadata.name.clone().unwrap_or_default();
        let key = (namespace.clone(), name.clone());
        let source = ServiceSource::Cluster {
            namespace: namespace.clone(),
            name: name.clone(),
        };
        let origin = format!("{namespace}/{name}");
        match outcome {
            Ok(Read::Found(settings, fingerprint)) => {
                let discovered = Discovered {
                    service: *settings,
                    source,
                    fingerprint,
                    unreadable: None,
                };
                seen.insert(key, discovered.clone());
                found.push(discovered);
            }
            // Its settings and Secret are not needed: the config file's entry is used.
            Ok(Read::Configured(registered)) => notes.push(config_wins(&source, &registered)),
            Ok(Read::Refused(asked, message)) => {
                notes.push(DiscoveryNote {
                    origin: origin.clone(),
                    message: format!("{message}; the service is left out"),
                    left_out: true,
                });
                refusals.push(Refusal {
                    service: asked,
                    origin,
                    message,
                });
            }
            Err(problem) => match last.remove(&key) {
                // History outlives a blip: the service stays, read as unreadable.
                Some(before) => {
                    notes.push(DiscoveryNote {
                        origin,
                        message: format!(
                            "{problem}; the settings read before are kept, and it is read again at the next sync"
                        ),
                        left_out: false,
                    });
                    let kept = Discovered {
                        unreadable: Some(problem.to_string()),
                        ..before
                    };
                    seen.insert(key, kept.clone());
                    found.push(kept);
                }
                None => notes.push(DiscoveryNote {
                    origin,
                    message: format!("{problem}; the service is left out until this is fixed"),
                    left_out: true,
                }),
            },
        }
    }
    // A Service gone from the cluster is forgotten here, and retired by the registry.
    *last = seen;
    tracing::info!(
        services = found.len(),
        notes = notes.len(),
        "services found in the cluster"
    );
    // Alerts first: once the overview shows what this sync found, its alerts are kept.
    if let Err(error) = judge_discovery(app, &refusals, chrono::Utc::now()).await {
        tracing::error!(%error, "could not keep the alerts of the Services discovery refused");
    }
    if let Err(error) = app.register_discovered(&found, notes).await {
        tracing::error!(%error, "could not register the services found in the cluster");
    }
}

/// What reading one labelled Service gave.
enum Read {
    /// Its settings with the database URL from its Secret, and what they were read from
    /// (the resource versions of both), to tell a change from the same Service again.
    Found(Box<runboard_core::config::ServiceConfig>, String),
    /// The name it registers, which the config file registers too.
    Configured(String),
    /// It asks for a team or token audience its namespace may not have: the name it asked
    /// for, and why not. Its Secret is not read.
    Refused(ServiceName, String),
}

async fn read(
    kubernetes: &KubernetesConfig,
    client: &Client,
    bridges: Option<&Bridges>,
    service: &Service,
    tokens_configured: bool,
    configured: &(dyn Fn(&ServiceName) -> bool + Sync),
) -> Result<Read, Problem> {
    let annotations::Described {
        service: mut settings,
        secret,
        secret_key,
    } = annotations::describe(service)?;
    if configured(&settings.name) {
        return Ok(Read::Configured(settings.name.to_string()));
    }
    let namespace = service.metadata.namespace.as_deref().unwrap_or("default");
    if let Some(message) = kubernetes.policy.refuses(
        namespace,
        &settings.team,
        settings.token_audience.as_deref(),
    ) {
        return Ok(Read::Refused(settings.name, message));
    }
    let unreadable = |message: String| Problem {
        key: "runboard.io/database-secret".into(),
        message,
    };
    // A read that outlasts the resync would hold up every other Service's.
    let found = tokio::time::timeout(
        kubernetes.resync,
        Api::<Secret>::namespaced(client.clone(), namespace).get(&secret),
    )
    .await
    .map_err(|_| {
        unreadable(format!(
            "the Secret {secret} did not come within {} (kubernetes.resync)",
            humantime::format_duration(kubernetes.resync)
        ))
    })?
    .map_err(|e| unreadable(secret_error(&secret, namespace, &e)))?;
    let data: BTreeMap<_, _> = found.data.unwrap_or_default();
    let Some(value) = data.get(&secret_key) else {
        let keys: Vec<&str> = data.keys().map(String::as_str).collect();
        return Err(Problem {
            key: "runboard.io/database-secret-key".into(),
            message: format!(
                "the Secret {secret} has no key {secret_key:?} (it has {}); name the key that holds the database URL",
                if keys.is_empty() {
                    "none".into()
                } else {
                    keys.join(", ")
                }
            ),
        });
    };
    let Ok(url) = String::from_utf8(value.0.clone()) else {
        return Err(unreadable(format!(
            "the Secret {secret}'s {secret_key:?} is not text; it should hold the database URL"
        )));
    };
    settings.database_url = url.trim().to_owned().into();
    if let Some(bridges) = bridges {
        reach_through(bridges, &mut settings, namespace).await?;
    }
    settings
        .check(tokens_configured)
        .map_err(annotations::annotation_of)?;
    let version = |v: &Option<String>| v.clone().unwrap_or_default();
    let fingerprint = format!(
        "{}/{}",
        version(&service.metadata.resource_version),
        version(&found.metadata.resource_version)
    );
    Ok(Read::Found(Box::new(settings), fingerprint))
}

/// Points the settings' database and mission-control URLs at the loopback bridges to the
/// Services they name.
async fn reach_through(
    bridges: &Bridges,
    settings: &mut runboard_core::config::ServiceConfig,
    namespace: &str,
) -> Result<(), Problem> {
    settings.graphql_url = bridges
        .reach(&settings.graphql_url, namespace)
        .await
        .map_err(|message| Problem {
            key: "runboard.io/mission-control-port".into(),
            message,
        })?;
    let database = Problem {
        key: "runboard.io/database-secret".into(),
        message: "the database URL in the Secret is not a URL".into(),
    };
    let url =
        url::Url::parse(settings.database_url.expose_secret()).map_err(|_| database.clone())?;
    let reached = bridges
        .reach(&url, namespace)
        .await
        .map_err(|message| Problem {
            message,
            ..database
        })?;
    settings.database_url = reached.to_string().into();
    Ok(())
}

/// Why a Secret could not be read, with what to do about it.
fn secret_error(secret: &str, namespace: &str, error: &kube::Error) -> String {
    match error {
        kube::Error::Api(status) if status.code == 404 => {
            format!("names the Secret {secret}, which is not in namespace {namespace}")
        }
        kube::Error::Api(status) if status.code == 403 => format!(
            "names the Secret {secret}, which Runboard's service account may not read; add it to the resourceNames of Runboard's Role in {namespace}"
        ),
        other => format!("the Secret {secret} cannot be read now: {other}"),
    }
}

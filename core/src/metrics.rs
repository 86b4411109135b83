//! Prometheus metrics of the fleet reads, the actions' calls, the alerts and Runboard's own
//! HTTP routes, served at `/metrics`.
//! Read failures are labelled by [`crate::connector::ReadProblem::label`], call failures by
//! [`crate::graphql_client::CallError::label`].

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use runboard_model::{AlertBoard, AlertState, ServiceName};

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ServiceLabel {
    service: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PollLabels {
    service: String,
    /// `ok`, or why the poll failed.
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    service: String,
    /// `ok`, or why the call failed ([`crate::graphql_client::CallError::label`]).
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReadLabels {
    service: String,
    /// The contract relation the statement read (`supervisor_view`, `withheld_funds`, …).
    relation: &'static str,
}

/// Statements sent to the services' databases, counted by every connector of a fleet at its
/// one place of reading: what the poller and the screens together cost each service.
#[derive(Debug, Clone, Default)]
pub struct ServiceReads(Family<ReadLabels, Counter>);

impl ServiceReads {
    /// Counts one query sent to `service`'s database about `relation` (not the `BEGIN` and
    /// `ROLLBACK` of the read-only transaction it runs in).
    pub fn record(&self, service: &ServiceName, relation: &'static str) {
        self.0
            .get_or_create(&ReadLabels {
                service: service.to_string(),
                relation,
            })
            .inc();
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AlertLabels {
    watch: &'static str,
    service: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EndLabels {
    service: String,
    /// The state the action ended (or paused) in.
    state: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    /// The route table's path (`/api/v1/actions/{id}`), never the request's own: one
    /// series per route however many ids are asked for; `fallback` for static files and
    /// paths no route knows.
    route: String,
    /// One of [`METHODS`] or `other`: a made-up method is not a new series.
    method: &'static str,
    status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ScreenLabels {
    /// The screen's route (`/services/{service}`).
    screen: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
    method: &'static str,
}

/// The methods counted by name; any other (anyone may send `FOO /healthz`) counts as
/// `other`, so that no request can add a series to `/metrics`.
const METHODS: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

fn method_label(method: &str) -> &'static str {
    METHODS
        .into_iter()
        .find(|known| *known == method)
        .unwrap_or("other")
}

/// Latency buckets from 5 ms to about 20 s: a screen's read to a slow preview.
fn latency_histogram() -> Histogram {
    Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
        0.005, 2.0, 13,
    ))
}

/// Counts a request in flight until dropped.
pub struct InFlight(Gauge);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}

pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    request_seconds: Family<RouteLabels, Histogram, fn() -> Histogram>,
    requests_in_flight: Gauge,
    polls: Family<PollLabels, Counter>,
    action_calls: Family<CallLabels, Counter>,
    actions_ended: Family<EndLabels, Counter>,
    up: Family<ServiceLabel, Gauge>,
    last_poll: Family<ServiceLabel, Gauge>,
    alerts_firing: Family<AlertLabels, Gauge>,
    screens_rendered: Family<ScreenLabels, Counter>,
}

impl Metrics {
    /// Fresh metrics, exposing also the statements `reads` counts (the fleet's).
    pub fn new(reads: &ServiceReads) -> Self {
        let mut registry = Registry::with_prefix("runboard");
        registry.register(
            "service_reads",
            "Queries sent to each service's database, by the relation read, by the poller and the screens (each in a read-only transaction of its own, whose BEGIN and ROLLBACK are not counted)",
            reads.0.clone(),
        );
        let polls = Family::<PollLabels, Counter>::default();
        let up = Family::<ServiceLabel, Gauge>::default();
        let last_poll = Family::<ServiceLabel, Gauge>::default();
        registry.register(
            "service_polls",
            "Polls of each service, by outcome (ok or the read problem)",
            polls.clone(),
        );
        registry.register(
            "service_up",
            "1 when the latest poll of the service read its numbers, else 0",
            up.clone(),
        );
        registry.register(
            "service_last_poll_timestamp_seconds",
            "When the service was last polled, Unix seconds",
            last_poll.clone(),
        );
        let action_calls = Family::<CallLabels, Counter>::default();
        let actions_ended = Family::<EndLabels, Counter>::default();
        registry.register(
            "action_calls",
            "Mission-control calls the execution engine sent, by service and outcome (ok or the failure)",
            action_calls.clone(),
        );
        registry.register(
            "actions_ended",
            "Actions the execution engine ended or paused, by service and state",
            actions_ended.clone(),
        );
        let alerts_firing = Family::<AlertLabels, Gauge>::default();
        registry.register(
            "alerts_firing",
            "Alerts firing (neither acknowledged nor silenced), by watch and service, as the store has them at the scrape",
            alerts_firing.clone(),
        );
        let requests = Family::<RequestLabels, Counter>::default();
        let request_seconds =
            Family::<RouteLabels, Histogram, fn() -> Histogram>::new_with_constructor(
                latency_histogram,
            );
        let requests_in_flight = Gauge::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by route (as the route table names it), method and status",
            requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "Time to each HTTP response's head, by route and method",
            request_seconds.clone(),
        );
        registry.register(
            "http_requests_in_flight",
            "HTTP requests being answered",
            requests_in_flight.clone(),
        );
        let screens_rendered = Family::<ScreenLabels, Counter>::default();
        registry.register(
            "screens_rendered",
            "Pages of the shared screens rendered, by screen; each is given to everyone holding the same roles for a second",
            screens_rendered.clone(),
        );
        Self {
            registry,
            screens_rendered,
            requests,
            request_seconds,
            requests_in_flight,
            alerts_firing,
            polls,
            action_calls,
            actions_ended,
            up,
            last_poll,
        }
    }

    /// Counts a request in flight while the guard lives.
    pub fn request_started(&self) -> InFlight {
        self.requests_in_flight.inc();
        InFlight(self.requests_in_flight.clone())
    }

    /// Counts one answered request of `route` and the time to its response's head.
    pub fn record_request(&self, route: &str, method: &str, status: u16, seconds: f64) {
        let method = method_label(method);
        self.requests
            .get_or_create(&RequestLabels {
                route: route.to_owned(),
                method,
                status,
            })
            .inc();
        self.request_seconds
            .get_or_create(&RouteLabels {
                route: route.to_owned(),
                method,
            })
            .observe(seconds);
    }

    /// Counts one page of a shared screen rendered.
    pub fn record_screen_rendered(&self, screen: &str) {
        self.screens_rendered
            .get_or_create(&ScreenLabels {
                screen: screen.to_owned(),
            })
            .inc();
    }

    /// Sets the alerts firing to those of the store's alert board, read for this scrape.
    pub fn set_alerts_firing(&self, board: &AlertBoard) {
        self.alerts_firing.clear();
        for alert in board
            .alerts
            .iter()
            .filter(|a| a.state == AlertState::Firing)
        {
            self.alerts_firing
                .get_or_create(&AlertLabels {
                    watch: alert.watch.as_str(),
                    service: alert.service.to_string(),
                })
                .inc();
        }
    }

    /// Counts one poll of `service`; `outcome` is `ok` or a read problem's label.
    pub fn record_poll(&self, service: &ServiceName, outcome: &'static str, at_unix_seconds: i64) {
        let service = service.to_string();
        self.polls
            .get_or_create(&PollLabels {
                service: service.clone(),
                outcome,
            })
            .inc();
        let label = ServiceLabel { service };
        self.up
            .get_or_create(&label)
            .set(i64::from(outcome == "ok"));
        self.last_poll.get_or_create(&label).set(at_unix_seconds);
    }

    /// Counts one mission-control call of an action; `outcome` is `ok` or a call error's label.
    pub fn record_call(&self, service: &ServiceName, outcome: &'static str) {
        self.action_calls
            .get_or_create(&CallLabels {
                service: service.to_string(),
                outcome,
            })
            .inc();
    }

    /// Counts an action the engine ended or paused in `state`.
    pub fn record_action_end(&self, service: &ServiceName, state: &'static str) {
        self.actions_ended
            .get_or_create(&EndLabels {
                service: service.to_string(),
                state,
            })
            .inc();
    }

    /// The OpenMetrics text exposition.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .expect("writing to a String cannot fail");
        text
    }
}

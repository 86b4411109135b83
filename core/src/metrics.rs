//! Prometheus metrics of the fleet reads and the actions' calls, served at `/metrics`.
//! Read failures are labelled by [`crate::connector::ReadProblem::label`], call failures by
//! [`crate::mission_control::CallError::label`].

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

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
    /// `ok`, or why the call failed ([`crate::mission_control::CallError::label`]).
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EndLabels {
    service: String,
    /// The state the action ended (or paused) in.
    state: &'static str,
}

pub struct Metrics {
    registry: Registry,
    polls: Family<PollLabels, Counter>,
    action_calls: Family<CallLabels, Counter>,
    actions_ended: Family<EndLabels, Counter>,
    up: Family<ServiceLabel, Gauge>,
    last_poll: Family<ServiceLabel, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("runboard");
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
        Self {
            registry,
            polls,
            action_calls,
            actions_ended,
            up,
            last_poll,
        }
    }
}

impl Metrics {
    /// Counts one poll of `service`; `outcome` is `ok` or a read problem's label.
    pub fn record_poll(&self, service: &str, outcome: &'static str, at_unix_seconds: i64) {
        let service = service.to_owned();
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
    pub fn record_call(&self, service: &str, outcome: &'static str) {
        self.action_calls
            .get_or_create(&CallLabels {
                service: service.to_owned(),
                outcome,
            })
            .inc();
    }

    /// Counts an action the engine ended or paused in `state`.
    pub fn record_action_end(&self, service: &str, state: &'static str) {
        self.actions_ended
            .get_or_create(&EndLabels {
                service: service.to_owned(),
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

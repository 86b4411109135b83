//! Limits that keep one person, one script or one stranger from starving everyone else
//! (and the fleet behind Runboard): a pace per signed-in person, and stricter ones per
//! client address (the socket's peer, or the client a trusted proxy names) for sign-in
//! (each may write a session row) and for refused tokens (so that guessing one is slow).
//! Probes and the site's static files are never limited.

use std::net::{IpAddr, Ipv4Addr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::Clock;
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};
use http::{HeaderValue, header};
use runboard_core::config::LimitsConfig;
use runboard_core::identity::Caller;

use crate::client_address::ClientAddress;
use crate::error::too_many_requests;
use crate::identity::Unauthenticated;

/// Checks between two sweeps of the limiters' memory of who asked, so that it stays as
/// large as the people and addresses seen lately, not all those ever seen.
const SWEEP_EVERY: u64 = 4096;

/// The limiters' time: Runboard's clock ([`runboard_core::clock::Clock`]), as the time
/// passed since the limits were made, so that a test moves it rather than racing it.
#[derive(Clone)]
struct LimitsClock {
    clock: runboard_core::clock::Clock,
    since: chrono::DateTime<chrono::Utc>,
}

impl Clock for LimitsClock {
    type Instant = std::time::Duration;

    fn now(&self) -> Self::Instant {
        self.clock.since(self.since)
    }
}

impl LimitsClock {
    fn limiter<K: std::hash::Hash + Eq + Clone>(&self, quota: Quota) -> Limiter<K> {
        RateLimiter::new(quota, DefaultKeyedStateStore::default(), self.clone())
    }
}

type Limiter<K> =
    RateLimiter<K, DefaultKeyedStateStore<K>, LimitsClock, NoOpMiddleware<std::time::Duration>>;

/// The limiters, shared by every request of this process.
pub(crate) struct Limits {
    people: Limiter<String>,
    sign_in: Limiter<IpAddr>,
    refused_tokens: Limiter<IpAddr>,
    /// The configured figures, for the messages.
    config: LimitsConfig,
    checks: AtomicU64,
}

fn at_least_one(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN)
}

impl Limits {
    pub(crate) fn new(config: &LimitsConfig, clock: &runboard_core::clock::Clock) -> Self {
        let clock = LimitsClock {
            clock: clock.clone(),
            since: clock.now(),
        };
        let per_person = Quota::per_second(at_least_one(config.per_person_per_second))
            .allow_burst(at_least_one(config.per_person_burst));
        Self {
            people: clock.limiter(per_person),
            sign_in: clock.limiter(Quota::per_minute(at_least_one(config.sign_in_per_minute))),
            refused_tokens: clock.limiter(Quota::per_minute(at_least_one(
                config.refused_tokens_per_minute,
            ))),
            config: config.clone(),
            checks: AtomicU64::new(0),
        }
    }

    fn sweep_now_and_then(&self) {
        if self.checks.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            self.people.retain_recent();
            self.sign_in.retain_recent();
            self.refused_tokens.retain_recent();
        }
    }
}

/// What a limiter says about one more request: on, or wait this many seconds.
fn allowed<K: std::hash::Hash + Eq + Clone>(limiter: &Limiter<K>, key: &K) -> Result<(), u64> {
    limiter.check_key(key).map_err(|not_until| {
        not_until
            .wait_time_from(limiter.clock().now())
            .as_secs()
            .max(1)
    })
}

/// Whether a request is one no limit applies to: the probes, which orchestrators call
/// whatever happens, and the site's static files, which every page load fetches.
fn exempt(path: &str) -> bool {
    matches!(path, "/healthz" | "/readyz" | "/metrics" | "/favicon.svg")
        || path.starts_with("/pkg/")
}

/// Holds each request against its limits; runs after the caller is known, before the gate.
pub(crate) async fn limit(
    State(limits): State<Arc<Limits>>,
    request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path();
    if exempt(path) {
        return next.run(request).await;
    }
    limits.sweep_now_and_then();
    let address = request
        .extensions()
        .get::<ClientAddress>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |client| client.0);
    let config = &limits.config;
    let verdict = if path == "/login" || path.starts_with("/auth/") {
        allowed(&limits.sign_in, &address).map_err(|wait| {
            (
                wait,
                format!(
                    "too many sign-in attempts from your address: at most {} a minute",
                    config.sign_in_per_minute
                ),
            )
        })
    } else if request
        .extensions()
        .get::<Unauthenticated>()
        .is_some_and(Unauthenticated::refused)
        && request.headers().contains_key(header::AUTHORIZATION)
    {
        // A token was sent and refused (not merely unchecked while the store is down):
        // guessing tokens must be slow.
        allowed(&limits.refused_tokens, &address).map_err(|wait| {
            (
                wait,
                format!(
                    "too many refused tokens from your address: at most {} a minute",
                    config.refused_tokens_per_minute
                ),
            )
        })
    } else {
        let who = match request.extensions().get::<Caller>().and_then(Caller::user) {
            Some(user) => format!("person:{}", user.subject),
            None => format!("address:{address}"),
        };
        allowed(&limits.people, &who).map_err(|wait| {
            (
                wait,
                format!(
                    "too many requests from you: at most {} a second (bursts of {})",
                    config.per_person_per_second, config.per_person_burst
                ),
            )
        })
    };
    match verdict {
        Ok(()) => next.run(request).await,
        Err((wait, message)) => {
            let mut response =
                too_many_requests(format!("{message}; try again in {wait} s")).into_response();
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(wait));
            response
        }
    }
}

//! Screens rendered once for everyone who would be shown the same page.
//!
//! During an incident many people watch the same screens. Their figures are shared reads
//! already ([`runboard_core::screens::ScreenReads`]); rendering those figures into a page
//! for each viewer was then most of what a view cost. A shared screen shows nothing
//! personal (the top bar asks for who is signed in from the browser), only the controls the
//! viewer's roles allow, so a rendered page is kept for a second and given to everyone
//! holding the same roles, with its script nonce replaced by each response's own. A page
//! rendered before this process learned of a change (a poll, a live read, an alert judged,
//! any write through it) is not shown again; other replicas show it for that second at most,
//! as they do the shared reads.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, Method, StatusCode, header};
use leptos::nonce::Nonce;
use runboard_app::LIVE_READ;
use runboard_core::identity::{Access, Caller};
use runboard_core::screens::{Freshness, SharedReads};
use runboard_model::Role;

use crate::http::ServerState;

/// How long a rendered screen is given to others: as long as what every page reads of the
/// store is shared.
const KEPT_FOR: Duration = Duration::from_secs(1);

/// The screens whose page depends only on its address and the viewer's roles: the ones
/// watched during an incident. The account, access and action screens are personal (an
/// action's page, say, offers Approve to everyone but its requester) and always rendered.
const SHARED_SCREENS: &[&str] = &[
    "/",
    "/funds",
    "/batches",
    "/alerts",
    "/lookup",
    "/api",
    "/services/{service}",
    "/services/{service}/sagas/{saga}",
    "/services/{service}/batches/{batch}",
];

/// The pages rendered lately, by address, roles and what this process knew when rendering.
pub struct SharedPages {
    renders: SharedReads<PageKey, RenderedPage, std::convert::Infallible>,
    /// Writes that went through this process (an action asked for, approved, an alert
    /// acknowledged): a page rendered before one of them may show what it changed.
    writes: AtomicU64,
}

/// What makes two views the same page.
#[derive(Clone, PartialEq, Eq, Hash)]
struct PageKey {
    /// Path and query.
    address: String,
    roles: BTreeSet<Role>,
    /// [`runboard_core::screens::ScreenReads::changes`] when it was rendered.
    changes: u64,
    /// [`SharedPages::writes`] when it was rendered.
    writes: u64,
}

/// A page as rendered, cut at its script nonce.
struct RenderedPage {
    status: StatusCode,
    headers: HeaderMap,
    /// The page's text between the places its nonce stood.
    around_nonce: Vec<String>,
}

impl SharedPages {
    pub fn new(clock: &runboard_core::clock::Clock) -> Self {
        Self {
            renders: SharedReads::new(KEPT_FOR, clock),
            writes: AtomicU64::new(0),
        }
    }
}

/// Gives a shared screen's page from the render kept for the viewer's roles, or renders it
/// once for everyone asking meanwhile. Other routes pass through.
pub(crate) async fn share(
    State(state): State<ServerState>,
    request: Request,
    next: Next,
) -> Response {
    let screen = request
        .extensions()
        .get::<MatchedPath>()
        .map(MatchedPath::as_str)
        .filter(|path| SHARED_SCREENS.contains(path))
        .map(str::to_owned);
    let roles = request
        .extensions()
        .get::<Caller>()
        .and_then(Caller::user)
        .map(|user| user.roles.clone());
    let nonce = request.extensions().get::<Nonce>().map(ToString::to_string);
    let (Some(screen), Some(roles), Some(nonce)) = (screen, roles, nonce) else {
        return next.run(request).await;
    };
    if request.method() != Method::GET || asks_live(&request) {
        return next.run(request).await;
    }
    let pages = &state.pages;
    let key = PageKey {
        address: request.uri().path_and_query().map_or_else(
            || request.uri().path().to_owned(),
            |p| p.as_str().to_owned(),
        ),
        roles,
        changes: state.app.screens.changes(),
        writes: pages.writes.load(Ordering::Acquire),
    };
    let metrics = &state.app.metrics;
    let this_nonce = nonce.as_str();
    let rendered = pages
        .renders
        .get(key, Freshness::Shared, |_| async move {
            let rendered = render(request, next, this_nonce).await;
            metrics.record_screen_rendered(&screen);
            rendered
        })
        .await;
    match rendered {
        Ok(page) => page.value.response(&nonce),
        Err(never) => match *never {},
    }
}

/// Counts a write that went through this process once it is done, so that no page rendered
/// before it is given again. Runs inside the gate, which tells what the route was.
pub(crate) async fn note_writes(
    State(state): State<ServerState>,
    request: Request,
    next: Next,
) -> Response {
    let writes = !matches!(*request.method(), Method::GET | Method::HEAD)
        && matches!(
            request.extensions().get::<Access>(),
            Some(Access::Operate | Access::Approve | Access::Admin)
        );
    let response = next.run(request).await;
    if writes {
        state.pages.writes.fetch_add(1, Ordering::AcqRel);
    }
    response
}

fn asks_live(request: &Request) -> bool {
    request.uri().query().is_some_and(|query| {
        query
            .split('&')
            .any(|pair| pair.split('=').next() == Some(LIVE_READ))
    })
}

/// Renders the page in full and keeps it, cut where its script nonce `nonce` stands.
async fn render(
    request: Request,
    next: Next,
    nonce: &str,
) -> Result<RenderedPage, std::convert::Infallible> {
    let (mut parts, body) = next.run(request).await.into_parts();
    let text = match axum::body::to_bytes(body, usize::MAX)
        .await
        .map(|bytes| String::from_utf8(bytes.to_vec()))
    {
        Ok(Ok(text)) => text,
        failed => {
            tracing::error!(?failed, "a shared screen's page could not be read whole");
            parts.status = StatusCode::INTERNAL_SERVER_ERROR;
            parts.headers = HeaderMap::new();
            "something went wrong; reload the page".to_owned()
        }
    };
    // The body is given whole: its length is its own, not the stream's.
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.remove(header::TRANSFER_ENCODING);
    Ok(RenderedPage {
        status: parts.status,
        headers: parts.headers,
        around_nonce: text.split(nonce).map(str::to_owned).collect(),
    })
}

impl RenderedPage {
    /// The page for one response, carrying that response's nonce.
    fn response(&self, nonce: &str) -> Response {
        (
            self.status,
            self.headers.clone(),
            Body::from(self.around_nonce.join(nonce)),
        )
            .into_response()
    }
}

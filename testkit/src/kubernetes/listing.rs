//! Lists and watches as the API server answers them: a label selector, the events of a
//! watch, a bookmark, and `410 Gone` for a resource version it no longer has.

use super::*;

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

pub(super) fn list_or_watch(
    shared: Arc<Shared>,
    namespace: Option<String>,
    query: HashMap<String, String>,
) -> Response {
    let selector = query.get("labelSelector").cloned().unwrap_or_default();
    let watching = query.get("watch").is_some_and(|w| w == "true" || w == "1");
    let mut objects = shared.objects.lock().unwrap();
    if let Some(refused) = objects.refuse(
        if watching { "watch" } else { "list" },
        "services",
        namespace.as_deref(),
    ) {
        return refused;
    }
    if !watching {
        objects.answered.lists += 1;
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
    let bookmarks = query
        .get("allowWatchBookmarks")
        .is_some_and(|b| b == "true");
    // As a real server does, a watch from history it no longer has opens and says 410 Gone.
    if since < objects.compacted {
        objects.answered.gone += 1;
        let compacted = objects.compacted;
        drop(objects);
        return watch_events(vec![gone(since, compacted)]);
    }
    drop(objects);
    let changes = shared.changed.subscribe();
    let expiry = shared.expired.subscribe();
    // Each step sends the changes after `seen`, then waits for the next one; where nothing
    // this watch selects changed, a bookmark (if allowed) says how far it has come.
    let events = futures_util::stream::unfold(
        (since, VecDeque::<String>::new(), changes, expiry, false),
        move |(mut seen, mut pending, mut changes, mut expiry, ended)| {
            let shared = shared.clone();
            let namespace = namespace.clone();
            let selector = selector.clone();
            async move {
                loop {
                    if let Some(line) = pending.pop_front() {
                        return Some((
                            Ok::<_, Infallible>(line),
                            (seen, pending, changes, expiry, ended),
                        ));
                    }
                    if ended {
                        return None;
                    }
                    {
                        let mut objects = shared.objects.lock().unwrap();
                        for (version, kind, object) in &objects.history {
                            if *version > seen && selected(object, namespace.as_deref(), &selector)
                            {
                                pending.push_back(format!(
                                    "{}\n",
                                    json!({ "type": kind, "object": object })
                                ));
                            }
                        }
                        if pending.is_empty() && bookmarks && objects.version > seen {
                            objects.answered.bookmarks += 1;
                            pending.push_back(bookmark(objects.version));
                        }
                        seen = objects.version;
                    }
                    if !pending.is_empty() {
                        continue;
                    }
                    tokio::select! {
                        changed = changes.changed() => if changed.is_err() { return None },
                        _ = expiry.changed() => {
                            let mut objects = shared.objects.lock().unwrap();
                            objects.answered.gone += 1;
                            pending.push_back(gone(seen, objects.compacted));
                            return pending.pop_front().map(|line| {
                                (Ok(line), (seen, pending, changes, expiry, true))
                            });
                        }
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

/// A watch answer of these lines only.
fn watch_events(lines: Vec<String>) -> Response {
    let events = futures_util::stream::iter(lines.into_iter().map(Ok::<_, Infallible>));
    Response::builder()
        .header("content-type", "application/json")
        .body(Body::from_stream(events))
        .unwrap()
}

/// The watch event of history gone: a Status of 410, as the client reads it.
fn gone(since: u64, compacted: u64) -> String {
    let status = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {},
        "status": "Failure", "reason": "Expired", "code": 410,
        "message": format!("too old resource version: {since} ({compacted})"),
    });
    format!("{}\n", json!({ "type": "ERROR", "object": status }))
}

/// A bookmark: no change, only how far the watch has come.
fn bookmark(version: u64) -> String {
    let object = json!({
        "kind": "Service", "apiVersion": "v1",
        "metadata": { "resourceVersion": version.to_string() },
    });
    format!("{}\n", json!({ "type": "BOOKMARK", "object": object }))
}

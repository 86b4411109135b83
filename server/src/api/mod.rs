//! The JSON API under `/api/v1`: everything a screen can do, by domain.

mod access;
mod account;
mod actions;
mod alerts;
mod audit;
mod export;
pub(crate) mod extract;
mod lookup;
pub(crate) mod openapi;
mod record;
mod runbooks;
pub(crate) mod services;

use axum::extract::OriginalUri;
use http::Method;
use runboard_core::identity::Access;

use crate::error::{ApiError, not_found};
use crate::http::RouteTable;
pub(crate) use openapi::Doc;

/// The API's routes, each with who may call it and what it takes and answers (the
/// OpenAPI document at `/api/v1/openapi.json` is made from this table).
pub(crate) fn routes(table: RouteTable) -> RouteTable {
    use Access::{Admin, Approve, BrowserSession, Operate, Public, Read};
    use Method as M;
    use runboard_model as model;
    table
        .add(M::GET, "/api/v1/openapi.json", Public, openapi::openapi_json)
        .doc(Doc::new("api", "This document: every route, who may call it, what it takes and answers").answers::<serde_json::Value>())
        .add(M::GET, "/api/v1/me", Read, account::me)
        .doc(Doc::new("account", "Who is calling: their roles, and the session's CSRF token").answers::<account::Me>())
        .add(M::GET, "/api/v1/tokens", Read, account::list_tokens)
        .doc(Doc::new("account", "The caller's API tokens, never their secrets").answers::<account::TokenList>())
        // A token may not mint tokens.
        .add(M::POST, "/api/v1/tokens", BrowserSession, account::create_token)
        .doc(Doc::new("account", "Makes an API token; its secret is shown this once").takes::<account::NewToken>().answers_with::<model::IssuedApiToken>(201))
        .add(M::DELETE, "/api/v1/tokens/{id}", Read, account::revoke_token)
        .doc(Doc::new("account", "Revokes one of the caller's API tokens"))
        .add(M::GET, "/api/v1/people", Admin, access::people)
        .doc(Doc::new("access", "Everyone who signed in or holds a token").answers::<access::People>())
        .add(M::GET, "/api/v1/access", Admin, access::of_person)
        .doc(Doc::new("access", "One person's sessions and tokens").query::<access::Whose>().answers::<model::PersonAccess>())
        .add(M::POST, "/api/v1/access/revoke", Admin, access::revoke)
        .doc(Doc::new("access", "Ends every session and token of one person").takes::<access::Revocation>().answers::<model::AccessRevoked>())
        .add(M::GET, "/api/v1/services", Read, services::list)
        .doc(Doc::new("fleet", "Every service with its latest snapshot: counts, money held, reachability").answers::<services::ServiceList>())
        .add(M::GET, "/api/v1/services/{service}/sagas", Read, services::sagas)
        .doc(Doc::new("fleet", "One page of a service's sagas, filtered; as CSV, every saga the filter lists").query::<model::SagaQuery>().answers::<model::SagaPage>().csv())
        .add(M::GET, "/api/v1/services/{service}/errors", Read, services::errors)
        .doc(Doc::new("fleet", "A service's failed sagas grouped by error message").query::<services::LiveQuery>().answers::<services::ErrorGroups>().csv())
        .add(M::GET, "/api/v1/services/{service}/batches", Read, services::batches)
        .doc(Doc::new("fleet", "A service's batches with their progress").answers::<services::BatchList>().csv())
        .add(M::GET, "/api/v1/services/{service}/batches/{batch}", Read, services::batch)
        .doc(Doc::new("fleet", "One batch's progress").answers::<model::BatchProgress>())
        .add(M::GET, "/api/v1/services/{service}/batches/{batch}/items", Read, services::batch_items)
        .doc(Doc::new("fleet", "One page of a batch's items (all, or those in `status`); as CSV, all of them").query::<services::ItemQuery>().answers::<model::BatchItemPage>().csv())
        .add(M::GET, "/api/v1/services/{service}/funds", Read, services::saga_funds)
        .doc(Doc::new("fleet", "One page of the money each of a service's failed and stuck sagas holds, read live, by saga id; as CSV, all of them").query::<services::PageQuery>().answers::<services::SagaFunds>().csv())
        .add(M::GET, "/api/v1/funds", Read, services::funds)
        .doc(Doc::new("fleet", "Money held by failed and stuck sagas, per service and currency").answers::<services::FundsList>().csv())
        .add(M::POST, "/api/v1/lookup", Read, lookup::lookup)
        .doc(Doc::new("fleet", "Finds sagas and batch items by ID across every service").takes::<lookup::LookupRequest>().answers::<model::LookupResult>().csv())
        .add(M::GET, "/api/v1/audit", Read, audit::list)
        .doc(Doc::new("audit", "The audit log, oldest first, in pages by entry number; as CSV, all of it").query::<audit::AuditQuery>().answers::<audit::AuditPage>().csv())
        .add(M::GET, "/api/v1/audit/verify", Read, audit::verify)
        .doc(Doc::new("audit", "Checks the audit log's hash chain").answers::<runboard_core::audit::ChainCheck>())
        .add(M::GET, "/api/v1/services/{service}/actions", Read, actions::catalog)
        .doc(Doc::new("actions", "The corrective actions a service's mission control offers").query::<actions::CatalogQuery>().answers::<actions::CatalogAnswer>())
        .add(M::POST, "/api/v1/actions", Operate, actions::create)
        .doc(Doc::new("actions", "Asks for an action: resolves its entities and runs the service's dry run (the preview); with an Idempotency-Key header, a retry of the same request answers with the same action").takes::<runboard_core::actions::ActionRequest>().answers_with::<model::Action>(201))
        .add(M::GET, "/api/v1/actions", Read, actions::list)
        .doc(Doc::new("actions", "Actions, newest first").query::<actions::ListQuery>().answers::<actions::ActionList>())
        .add(M::GET, "/api/v1/actions/{id}", Read, actions::get)
        .doc(Doc::new("actions", "One action with its approvals and a page of its entities").query::<actions::EntityQuery>().answers::<actions::ActionDetail>())
        .add(M::GET, "/api/v1/actions/{id}/entities", Read, actions::entities)
        .doc(Doc::new("actions", "A page of an action's entities: as the preview found them, what the dry run planned and what was done, each step of a runbook; as CSV, all of them").query::<actions::EntityQuery>().answers::<actions::EntityList>().csv())
        .add(M::POST, "/api/v1/actions/{id}/submit", Operate, actions::submit)
        .doc(Doc::new("actions", "Submits a previewed action for approval, bound to its preview's digest").takes::<actions::Submission>().answers::<model::Action>())
        .add(M::POST, "/api/v1/actions/{id}/approve", Approve, actions::approve)
        .doc(Doc::new("actions", "Approves the exact preview whose digest is sent").takes::<actions::ApprovalRequest>().answers::<model::Action>())
        .add(M::POST, "/api/v1/actions/{id}/reject", Approve, actions::reject)
        .doc(Doc::new("actions", "Rejects an action, with the reason").takes::<actions::Rejection>().answers::<model::Action>())
        .add(M::POST, "/api/v1/actions/{id}/cancel", Operate, actions::cancel)
        .doc(Doc::new("actions", "Cancels an action; calls in flight finish, no other starts").answers::<model::Action>())
        .add(M::POST, "/api/v1/actions/{id}/resume", Operate, actions::resume)
        .doc(Doc::new("actions", "Carries on with a paused action, after the dry run again").answers::<model::Action>())
        .add(M::POST, "/api/v1/actions/{id}/pace", Operate, actions::pace)
        .doc(Doc::new("actions", "Gives the action a pace of its own (entities and calls per second at most), kept from its next call on").takes::<model::Pace>().answers::<model::Action>())
        .add(M::GET, "/api/v1/actions/{id}/record.md", Read, record::markdown)
        .doc(Doc::new("actions", "The action's record in Markdown, for an incident review").file("text/markdown"))
        .add(M::GET, "/api/v1/actions/{id}/request.toml", Read, record::request_file)
        .doc(Doc::new("actions", "The action's request as a file `runboard action plan` reads").file("application/toml"))
        .add(M::GET, "/api/v1/services/{service}/runbooks", Read, runbooks::of_service)
        .doc(Doc::new("runbooks", "A service's saved runbooks, by name").answers::<runbooks::RunbookList>())
        .add(M::POST, "/api/v1/runbooks", Operate, runbooks::save)
        .doc(Doc::new("runbooks", "Saves a runbook under its name, once its steps check against the service; one already saved is changed only by its author or an admin, and the version it replaces is kept").takes::<runboard_core::actions::runbook::RunbookDraft>().answers_with::<model::SavedRunbook>(201))
        .add(M::GET, "/api/v1/runbooks/{id}", Read, runbooks::get)
        .doc(Doc::new("runbooks", "One saved runbook").answers::<model::SavedRunbook>())
        .add(M::GET, "/api/v1/runbooks/{id}/runbook.toml", Read, runbooks::export)
        .doc(Doc::new("runbooks", "A saved runbook as the file `runboard action plan` reads").file("application/toml"))
        .add(M::GET, "/api/v1/alerts", Read, alerts::board)
        .doc(Doc::new("alerts", "Open alerts, those resolved lately, and the silences; as CSV, the alerts").answers::<model::AlertBoard>().csv())
        .add(M::POST, "/api/v1/alerts/{id}/acknowledge", Operate, alerts::acknowledge)
        .doc(Doc::new("alerts", "Acknowledges an alert: no more reminders").takes::<alerts::Acknowledging>().answers::<model::Alert>())
        .add(M::POST, "/api/v1/silences", Operate, alerts::silence)
        .doc(Doc::new("alerts", "No message about the alerts it covers until it ends").takes::<alerts::NewSilence>().answers::<model::Silence>())
        .add_any("/api/v1/{*rest}", Public, unknown_route)
}

async fn unknown_route(OriginalUri(uri): OriginalUri) -> ApiError {
    not_found(format!(
        "there is no API route at {}; the routes are listed in SPEC.md under \"HTTP API\"",
        uri.path()
    ))
}

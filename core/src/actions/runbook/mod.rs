//! Runbooks (issue #17): a corrective plan of several mission-control steps per entity,
//! previewed together and approved once. See `docs/design/runbooks.md` for the whole plan;
//! what is built so far:
//!
//! - [`template`]: a step's arguments, filled in for each entity from its values;
//! - [`values`]: those values, read for all the entities at once from the service's data;
//! - [`preview`]: every step's call for every entity, dry-run and written under one digest;
//! - [`saved`]: runbooks kept under a name per service.
//!
//! The engine runs the steps in order per entity (`crate::execution`).

mod preview;
mod saved;
pub mod template;
pub mod values;

pub use preview::MAX_RUNBOOK_ENTITIES;
pub(crate) use preview::with_dry_run;
pub use saved::RunbookDraft;

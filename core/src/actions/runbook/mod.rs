//! Runbooks (issue #17): a corrective plan of several mission-control steps per entity,
//! previewed together and approved once. See `docs/design/runbooks.md` for the whole plan;
//! what is built so far:
//!
//! - [`template`]: a step's arguments, filled in for each entity from its values;
//! - [`values`]: those values, read for all the entities at once from the service's data.

pub mod template;
pub mod values;

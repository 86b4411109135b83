//! Each list's columns, and what of each row is Runboard's own (written as it is) and what
//! came from a service or a person (neutralised).

use std::sync::Arc;

use chrono::{DateTime, Utc};
use runboard_core::audit::AuditEntry;
use runboard_model::{
    Alert, BatchItem, BatchProgress, EntityResult, ErrorGroup, LookupResult, Money, Saga,
    ServiceFunds,
};

use super::{Cells, CsvRow};

impl CsvRow for Saga {
    const COLUMNS: &'static [&'static str] = &[
        "saga_id",
        "saga_type",
        "current_step",
        "status",
        "error_message",
        "created_at",
        "updated_at",
    ];

    fn cells(&self, cells: &mut Cells) {
        cells.text(&self.saga_id);
        cells.text(&self.saga_type);
        cells.text(&self.current_step);
        cells.value(self.status.as_str());
        cells.opt_text(self.error_message.as_deref());
        cells.time(self.created_at);
        cells.time(self.updated_at);
    }
}

impl CsvRow for ErrorGroup {
    const COLUMNS: &'static [&'static str] = &["error_message", "count", "first_seen", "last_seen"];

    fn cells(&self, cells: &mut Cells) {
        cells.text(&self.error_message);
        cells.value(self.count);
        cells.time(self.first_seen);
        cells.time(self.last_seen);
    }
}

impl CsvRow for BatchProgress {
    const COLUMNS: &'static [&'static str] = &[
        "batch_id",
        "name",
        "started_at",
        "finished_at",
        "done",
        "failed",
        "pending",
        "last_finished_at",
    ];

    fn cells(&self, cells: &mut Cells) {
        cells.text(&self.batch_id);
        cells.text(&self.name);
        cells.time(self.started_at);
        cells.opt_time(self.finished_at);
        cells.value(self.done);
        cells.value(self.failed);
        cells.value(self.pending);
        cells.opt_time(self.last_finished_at);
    }
}

impl CsvRow for BatchItem {
    const COLUMNS: &'static [&'static str] = &["item_id", "status", "error", "updated_at"];

    fn cells(&self, cells: &mut Cells) {
        cells.text(&self.item_id);
        cells.value(self.status.as_str());
        cells.opt_text(self.error.as_deref());
        cells.time(self.updated_at);
    }
}

/// The money one saga holds.
pub(crate) type HeldRow = (String, Money);

impl CsvRow for HeldRow {
    const COLUMNS: &'static [&'static str] = &["saga_id", "amount", "currency"];

    fn cells(&self, cells: &mut Cells) {
        cells.text(&self.0);
        cells.money(Some(&self.1));
    }
}

/// One service's money in one currency, as its latest poll read it.
pub(crate) struct ServiceFundsRow {
    service: String,
    polled_at: Option<DateTime<Utc>>,
    money: Money,
}

impl ServiceFundsRow {
    /// A row per service and currency; a service holding nothing has none.
    pub(crate) fn of(funds: &[ServiceFunds]) -> Vec<Self> {
        funds
            .iter()
            .flat_map(|service| {
                service.withheld_funds.iter().map(|money| Self {
                    service: service.service.to_string(),
                    polled_at: service.polled_at,
                    money: money.clone(),
                })
            })
            .collect()
    }
}

impl CsvRow for ServiceFundsRow {
    const COLUMNS: &'static [&'static str] = &["service", "amount", "currency", "polled_at"];

    fn cells(&self, cells: &mut Cells) {
        cells.text(&self.service);
        cells.money(Some(&self.money));
        cells.opt_time(self.polled_at);
    }
}

/// One line of a lookup: a saga or a batch item a service holds, an ID none holds, or a
/// service that could not be searched.
pub(crate) enum LookupRow {
    Saga(String, Saga),
    BatchItem(String, String, BatchItem),
    NotFound(String),
    Unsearched(String, String),
}

impl LookupRow {
    pub(crate) fn of(result: LookupResult) -> Vec<Self> {
        let mut rows = Vec::new();
        for matches in result.services {
            if let Some(error) = matches.error {
                rows.push(Self::Unsearched(matches.service.clone(), error));
            }
            for saga in matches.sagas {
                rows.push(Self::Saga(matches.service.clone(), saga));
            }
            for (batch, item) in matches.batch_items {
                rows.push(Self::BatchItem(matches.service.clone(), batch, item));
            }
        }
        rows.extend(result.not_found.into_iter().map(Self::NotFound));
        rows
    }
}

impl CsvRow for LookupRow {
    const COLUMNS: &'static [&'static str] = &[
        "found",
        "service",
        "id",
        "batch_id",
        "saga_type",
        "current_step",
        "status",
        "error",
        "updated_at",
    ];

    fn cells(&self, cells: &mut Cells) {
        match self {
            Self::Saga(service, saga) => {
                cells.value("saga");
                cells.text(service);
                cells.text(&saga.saga_id);
                cells.text("");
                cells.text(&saga.saga_type);
                cells.text(&saga.current_step);
                cells.value(saga.status.as_str());
                cells.opt_text(saga.error_message.as_deref());
                cells.time(saga.updated_at);
            }
            Self::BatchItem(service, batch, item) => {
                cells.value("batch_item");
                cells.text(service);
                cells.text(&item.item_id);
                cells.text(batch);
                cells.text("");
                cells.text("");
                cells.value(item.status.as_str());
                cells.opt_text(item.error.as_deref());
                cells.time(item.updated_at);
            }
            Self::NotFound(id) => {
                cells.value("nowhere");
                cells.text("");
                cells.text(id);
                for _ in 0..6 {
                    cells.text("");
                }
            }
            Self::Unsearched(service, error) => {
                cells.value("unsearched");
                cells.text(service);
                for _ in 0..5 {
                    cells.text("");
                }
                cells.text(error);
                cells.text("");
            }
        }
    }
}

impl CsvRow for Alert {
    const COLUMNS: &'static [&'static str] = &[
        "id",
        "service",
        "watch",
        "subject",
        "state",
        "summary",
        "fired_at",
        "last_seen_at",
        "acknowledged_by",
        "acknowledged_at",
        "acknowledgement_note",
        "resolved_at",
        "link",
    ];

    fn cells(&self, cells: &mut Cells) {
        cells.value(self.id);
        cells.text(self.service.as_str());
        cells.value(self.watch.as_str());
        cells.text(&self.subject);
        cells.value(self.state.as_str());
        cells.text(&self.summary);
        cells.time(self.fired_at);
        cells.time(self.last_seen_at);
        let acknowledged = self.acknowledged.as_ref();
        cells.opt_text(acknowledged.map(|a| a.by.as_str()));
        cells.opt_time(acknowledged.map(|a| a.at));
        cells.opt_text(acknowledged.map(|a| a.note.as_str()));
        cells.opt_time(self.resolved_at);
        cells.text(&self.link);
    }
}

impl CsvRow for AuditEntry {
    const COLUMNS: &'static [&'static str] = &[
        "seq",
        "at",
        "actor",
        "action_id",
        "kind",
        "detail",
        "prev_hash",
        "hash",
    ];

    fn cells(&self, cells: &mut Cells) {
        cells.value(self.seq);
        cells.time(self.at);
        cells.text(&self.actor);
        cells.opt_text(self.action_id.as_deref());
        cells.value(&self.kind);
        cells.text(&self.detail);
        cells.value(&self.prev_hash);
        cells.value(&self.hash);
    }
}

/// One entity of an action: as the preview found it, what the dry run planned and what
/// was done; in a runbook, one row per step (`step` from 0), else one with no step.
pub(crate) struct EntityRow {
    entity: Arc<EntityResult>,
    step: Option<usize>,
}

impl EntityRow {
    pub(crate) fn of(entities: Vec<EntityResult>) -> Vec<Self> {
        let mut rows = Vec::with_capacity(entities.len());
        for entity in entities.into_iter().map(Arc::new) {
            if entity.steps.is_empty() {
                rows.push(Self { entity, step: None });
            } else {
                rows.extend((0..entity.steps.len()).map(|step| Self {
                    entity: entity.clone(),
                    step: Some(step),
                }));
            }
        }
        rows
    }
}

impl CsvRow for EntityRow {
    const COLUMNS: &'static [&'static str] = &[
        "position",
        "entity_id",
        "found",
        "held_amount",
        "held_currency",
        "step",
        "chunk",
        "state",
        "attempts",
        "planned",
        "detail",
        "updated_at",
    ];

    fn cells(&self, cells: &mut Cells) {
        let entity = &self.entity;
        cells.value(entity.position);
        cells.text(&entity.entity_id);
        cells.opt_text(entity.found.as_deref());
        cells.money(entity.held.as_ref());
        match self.step.map(|i| &entity.steps[i]) {
            Some(step) => {
                cells.value(step.step);
                cells.value(step.chunk);
                cells.value(step.state.as_str());
                cells.value(step.attempts);
                cells.text(&step.planned.join("; "));
                cells.opt_text(step.detail.as_deref());
            }
            None => {
                cells.text("");
                cells.value(entity.chunk);
                cells.value(entity.state.as_str());
                cells.value(entity.attempts);
                cells.text(&entity.planned.join("; "));
                cells.opt_text(entity.detail.as_deref());
            }
        }
        cells.time(entity.updated_at);
    }
}

//! An action's entities cut into the calls its preview plans, as they arrive: a selection's
//! pages are still being read while the first calls' dry run is out.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use super::MAX_ENTITIES;
use crate::actions::ActionError;

/// One call of a preview: the entities it names, in order, and their states when the
/// selection's pages said them (an error group's sagas come with everything a preview says
/// of them, so a million of them need no second lookup).
#[derive(Debug, Default, PartialEq)]
pub(crate) struct PlannedCall {
    pub(crate) ids: Vec<String>,
    pub(crate) states: Option<Vec<Arc<str>>>,
}

/// Each entity once, at most [`MAX_ENTITIES`] of them: pages read from a service may
/// overlap, and a pasted list often repeats an ID.
#[derive(Default)]
pub(crate) struct EachOnce(HashSet<String>);

impl EachOnce {
    /// Whether `id` is new; an error once more than [`MAX_ENTITIES`] are.
    pub(crate) fn first(&mut self, id: &str) -> Result<bool, ActionError> {
        if self.0.contains(id) {
            return Ok(false);
        }
        if self.0.len() == MAX_ENTITIES {
            return Err(ActionError::BadArguments(format!(
                "the selection holds more than {MAX_ENTITIES} entities, the most one action takes; narrow it (a filter of the service screen) or act on it in parts"
            )));
        }
        self.0.insert(id.to_owned());
        Ok(true)
    }
}

/// Cuts entities, as they come, into the preview's calls: the canary, then calls that double
/// up to the chunk size ([`runboard_model::call_sizes`]), each entity once.
pub(crate) struct CallCutter {
    once: EachOnce,
    sizes: Box<dyn Iterator<Item = u64> + Send>,
    size: usize,
    call: PlannedCall,
    /// What has been cut so far, for the dry run to say how far it got.
    pub(crate) so_far: Arc<CutSoFar>,
}

impl CallCutter {
    /// A cutter for `expected` entities, when their count is known before they come.
    pub(crate) fn new(canary: u32, chunk_size: u32, expected: Option<usize>) -> Self {
        // Sizes for as many entities as there can be: the last call holds what is left.
        let mut sizes = runboard_model::call_sizes(u64::MAX, canary, chunk_size);
        let size = sizes.next().unwrap_or(1) as usize;
        Self {
            once: EachOnce::default(),
            sizes: Box::new(sizes),
            size,
            call: PlannedCall::default(),
            so_far: Arc::new(CutSoFar {
                expected,
                ..CutSoFar::default()
            }),
        }
    }

    /// Adds an entity (and its state, if known), unless it came before; the call it fills,
    /// if it fills one.
    pub(crate) fn add(
        &mut self,
        id: String,
        state: Option<Arc<str>>,
    ) -> Result<Option<PlannedCall>, ActionError> {
        if !self.once.first(&id)? {
            return Ok(None);
        }
        self.call.ids.push(id);
        if let Some(state) = state {
            self.call.states.get_or_insert_default().push(state);
        }
        self.so_far.entities.fetch_add(1, Ordering::Relaxed);
        if self.call.ids.len() < self.size {
            return Ok(None);
        }
        self.size = self.sizes.next().unwrap_or(1) as usize;
        Ok(Some(std::mem::take(&mut self.call)))
    }

    /// The last call, if entities are left over; the count is then whole.
    pub(crate) fn finish(mut self) -> Option<PlannedCall> {
        self.so_far.whole.store(true, Ordering::Relaxed);
        (!self.call.ids.is_empty()).then(|| std::mem::take(&mut self.call))
    }
}

/// How many entities have been cut into calls, and whether that is all of them.
#[derive(Default)]
pub(crate) struct CutSoFar {
    /// The count, when it was known before the entities came (a pasted list).
    expected: Option<usize>,
    entities: AtomicUsize,
    whole: AtomicBool,
}

impl CutSoFar {
    /// A count known from the start.
    pub(crate) fn known(entities: usize) -> Self {
        Self {
            expected: Some(entities),
            ..Self::default()
        }
    }

    /// "of 50 entities", or "of the 5000 entities read so far" while a selection is read.
    pub(crate) fn of(&self) -> String {
        let entities = self.entities.load(Ordering::Relaxed);
        match self.expected {
            Some(expected) => format!("of {expected} entities"),
            None if self.whole.load(Ordering::Relaxed) => format!("of {entities} entities"),
            None => format!("of the {entities} entities read so far"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{CallCutter, MAX_ENTITIES, PlannedCall};

    fn cut(
        ids: impl IntoIterator<Item = String>,
        canary: u32,
        chunk_size: u32,
    ) -> Vec<Vec<String>> {
        let mut cutter = CallCutter::new(canary, chunk_size, None);
        let mut calls: Vec<PlannedCall> = Vec::new();
        for id in ids {
            calls.extend(cutter.add(id, None).unwrap());
        }
        calls.extend(cutter.finish());
        calls.into_iter().map(|call| call.ids).collect()
    }

    #[test]
    fn entities_are_cut_as_the_planned_calls_are_sized_and_each_is_named_once() {
        let ids = ["a", "b", "a", "c", "d", "e", "f", "b", "g", "h"].map(String::from);
        let calls = cut(ids, 1, 4);
        assert_eq!(
            calls,
            [
                vec!["a"],
                vec!["b", "c"],
                vec!["d", "e", "f", "g"],
                vec!["h"]
            ],
            "the canary, then doubling up to the chunk size; repeats dropped"
        );
        let sizes: Vec<u64> = runboard_model::call_sizes(8, 1, 4).collect();
        assert_eq!(
            calls.iter().map(|c| c.len() as u64).collect::<Vec<_>>(),
            sizes,
            "the sizes the engine plans for the same count"
        );
    }

    #[test]
    fn a_selection_of_a_million_entities_is_taken_each_once_in_its_order_and_one_more_is_refused() {
        // Pages read from a service may overlap: the repeat of "s-0" is not one more entity.
        let ids = (0..MAX_ENTITIES)
            .map(|i| format!("s-{i}"))
            .chain(["s-0".to_owned()]);
        let calls = cut(ids, 10, 1000);
        let entities: Vec<&String> = calls.iter().flatten().collect();
        assert_eq!(entities.len(), 1_000_000);
        assert_eq!(
            (entities[0].as_str(), entities[999_999].as_str()),
            ("s-0", "s-999999")
        );

        let mut cutter = CallCutter::new(10, 1000, None);
        for i in 0..MAX_ENTITIES {
            cutter.add(format!("s-{i}"), None).unwrap();
        }
        let refused = cutter
            .add("one more".into(), None)
            .expect_err("refused")
            .to_string();
        assert!(refused.contains("act on it in parts"), "{refused}");
    }
}

//! What the screens read of each service's database, shared by everyone watching.
//!
//! N people watching a page during an incident must cost the service what one does: each
//! read (per service, query and parameters) is made once a poll interval and shared. People
//! asking while a read is under way wait on that one read, or are shown the previous one if
//! there is one; a read that failed is kept only briefly, so a recovering service shows
//! again quickly. "Read live now" starts a fresh read, or joins the one under way. The Funds
//! screen's sagas are kept from the poller's own read, so it reads nothing itself.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use runboard_model::{
    AlertBoard, BatchItem, BatchItemStatus, BatchProgress, ErrorGroup, Money, SagaPage,
    ServiceName, ServiceOverview,
};
use tokio::sync::OnceCell;

use crate::clock::Clock;
use crate::connector::{Connector, ReadError, SagaFilter};
use crate::store::{Store, StoreError};

/// How long a failed read is shown before the next viewer tries again: long enough that a
/// crowd does not hammer a struggling service, short enough that its recovery shows at once.
const FAILURE_KEPT: Duration = Duration::from_secs(2);

/// Sagas listed behind a service's funds: the largest sums are the ones to look at first.
pub const SAGAS_SHOWN: usize = 50;

/// A shared read's figures and when they were read.
#[derive(Debug)]
pub struct Fresh<V> {
    pub value: V,
    /// When the read began: the figures are as of this time.
    pub read_at: DateTime<Utc>,
}

/// What a shared read gives: its figures, or why the service (or the store) could not be read.
pub type Shared<V, E = ReadError> = Result<Arc<Fresh<V>>, Arc<E>>;

/// Whether a screen takes the shared figures or asks for a read now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    /// The figures read at most a poll interval ago.
    Shared,
    /// A read now (or the one already under way): someone pressed "read live now".
    Live,
}

impl Freshness {
    /// `Live` when `live` is set.
    pub fn live_if(live: bool) -> Self {
        if live { Self::Live } else { Self::Shared }
    }
}

/// The sagas behind one service's withheld funds: only the largest are kept, whatever the
/// number of sagas, so that a service with 200,000 of them costs no more memory than one.
#[derive(Debug, Clone, PartialEq)]
pub struct SagasHolding {
    /// `(saga_id, money)`, the largest [`SAGAS_SHOWN`], largest first.
    pub largest: Vec<(String, Money)>,
    /// How many sagas hold money in all.
    pub total: usize,
}

impl SagasHolding {
    /// Keeps the largest [`SAGAS_SHOWN`] of `sagas`.
    pub fn largest_of(mut sagas: Vec<(String, Money)>) -> Self {
        let total = sagas.len();
        if total > SAGAS_SHOWN {
            sagas.select_nth_unstable_by_key(SAGAS_SHOWN - 1, |(_, money)| {
                std::cmp::Reverse(money.amount)
            });
            sagas.truncate(SAGAS_SHOWN);
        }
        sagas.sort_by_key(|(_, money)| std::cmp::Reverse(money.amount));
        Self {
            largest: sagas,
            total,
        }
    }
}

/// A batch as its page shows it, read in one go.
#[derive(Debug)]
pub struct BatchReading {
    /// `None` when the service has no such batch.
    pub progress: Option<BatchProgress>,
    /// When each finished item finished, oldest first.
    pub finished: Vec<DateTime<Utc>>,
    /// Failed items grouped by error, largest group first.
    pub errors: Vec<(String, u64)>,
    /// The first failed items.
    pub failed_items: Vec<BatchItem>,
}

/// Failed items listed on a batch's page.
const FAILED_ITEMS_SHOWN: u32 = 50;

/// How long what every page reads of the store (the latest snapshots of the overview and
/// the Funds screen, the alerts in the navigation) is shared between the people watching:
/// it changes once a poll interval, and a second keeps a new poll prompt on screen while a
/// crowd costs the store one query a second.
const STORE_READS_SHARED_FOR: Duration = Duration::from_secs(1);

/// The screens' shared reads, one kind of query each.
pub struct ScreenReads {
    snapshots: SharedReads<(), Vec<ServiceOverview>, StoreError>,
    alerts: SharedReads<(), AlertBoard, StoreError>,
    error_groups: SharedReads<String, Vec<ErrorGroup>>,
    sagas: SharedReads<(String, SagaFilter), SagaPage>,
    funds: SharedReads<String, Option<SagasHolding>>,
    batches: SharedReads<String, Vec<BatchProgress>>,
    batch: SharedReads<(String, String), BatchReading>,
    /// Counts what this process learned that changes what screens show (a poll, an alert
    /// judged, acknowledged or silenced), so that pages rendered before it are not shown again.
    changes: AtomicU64,
}

impl ScreenReads {
    /// Shared reads that last `interval`: the poll interval, so the screens are as fresh as
    /// the overview. Their age is told by `clock`, Runboard's.
    pub fn new(interval: Duration, clock: &Clock) -> Self {
        Self {
            snapshots: SharedReads::new(STORE_READS_SHARED_FOR, clock),
            alerts: SharedReads::new(STORE_READS_SHARED_FOR, clock),
            error_groups: SharedReads::new(interval, clock),
            sagas: SharedReads::new(interval, clock),
            funds: SharedReads::new(interval, clock),
            batches: SharedReads::new(interval, clock),
            batch: SharedReads::new(interval, clock),
            changes: AtomicU64::new(0),
        }
    }

    /// How many times this process has learned something that changes what screens show:
    /// a page rendered at an older count is out of date.
    pub fn changes(&self) -> u64 {
        self.changes.load(Ordering::Acquire)
    }

    fn changed(&self) {
        self.changes.fetch_add(1, Ordering::AcqRel);
    }

    /// A live read is news for everyone watching, not only for who asked for it.
    fn read<V, E>(&self, freshness: Freshness, shared: Shared<V, E>) -> Shared<V, E> {
        if freshness == Freshness::Live {
            self.changed();
        }
        shared
    }

    /// Every service's latest snapshot, as the store had it at most a second ago.
    pub async fn snapshots(&self, store: &Store) -> Shared<Vec<ServiceOverview>, StoreError> {
        self.snapshots
            .get((), Freshness::Shared, |_| store.overview())
            .await
    }

    /// This process has just recorded a poll: its screens show it at once rather than
    /// after the second the kept snapshots last.
    pub fn snapshots_recorded(&self) {
        self.snapshots.forget(&());
        self.changed();
    }

    /// The alerts board as the store had it at most a second ago, for what every page shows
    /// of it (the navigation's count, a service's alerts); the Alerts screen reads it live.
    pub async fn alert_board(&self, store: &Store) -> Shared<AlertBoard, StoreError> {
        self.alerts
            .get((), Freshness::Shared, |now| store.alert_board(now))
            .await
    }

    /// This process has just changed an alert (a poll judged, someone acknowledged or
    /// silenced): its pages show the change at once.
    pub fn alerts_changed(&self) {
        self.alerts.forget(&());
        self.changed();
    }

    /// A service's failed sagas grouped by error message.
    pub async fn error_groups(
        &self,
        connector: &Connector,
        freshness: Freshness,
    ) -> Shared<Vec<ErrorGroup>> {
        let key = connector.name().to_string();
        let shared = self
            .error_groups
            .get(key, freshness, |_| connector.error_groups())
            .await;
        self.read(freshness, shared)
    }

    /// One page of a service's sagas; each filter and page is a read of its own.
    pub async fn sagas(
        &self,
        connector: &Connector,
        filter: &SagaFilter,
        freshness: Freshness,
    ) -> Shared<SagaPage> {
        let key = (connector.name().to_string(), filter.clone());
        let shared = self
            .sagas
            .get(key, freshness, |now| connector.sagas(filter, now))
            .await;
        self.read(freshness, shared)
    }

    /// The sagas behind a service's withheld funds; `None` where it holds no money. The
    /// poller's reads keep these current (see [`ScreenReads::polled_funds`]).
    pub async fn funds(
        &self,
        connector: &Connector,
        freshness: Freshness,
    ) -> Shared<Option<SagasHolding>> {
        let key = connector.name().to_string();
        let shared = self
            .funds
            .get(key, freshness, |_| async {
                Ok(connector
                    .withheld_by_saga()
                    .await?
                    .map(SagasHolding::largest_of))
            })
            .await;
        self.read(freshness, shared)
    }

    /// Keeps what a poll read of the sagas behind `service`'s funds, so the Funds screen
    /// shows it without reading the service again.
    pub fn polled_funds(
        &self,
        service: &ServiceName,
        holding: Option<SagasHolding>,
        read_at: DateTime<Utc>,
    ) {
        self.funds.put(
            service.to_string(),
            Fresh {
                value: holding,
                read_at,
            },
        );
        self.changed();
    }

    /// A service's batches, newest first.
    pub async fn batches(
        &self,
        connector: &Connector,
        freshness: Freshness,
    ) -> Shared<Vec<BatchProgress>> {
        let key = connector.name().to_string();
        let shared = self
            .batches
            .get(key, freshness, |_| connector.batches(None))
            .await;
        self.read(freshness, shared)
    }

    /// One batch: its progress, when its items finished and its failed items by error.
    pub async fn batch(
        &self,
        connector: &Connector,
        batch_id: &str,
        freshness: Freshness,
    ) -> Shared<BatchReading> {
        let key = (connector.name().to_string(), batch_id.to_owned());
        let shared = self
            .batch
            .get(key, freshness, |_| async {
                let Some(progress) = connector.batches(Some(batch_id)).await?.pop() else {
                    return Ok(BatchReading {
                        progress: None,
                        finished: Vec::new(),
                        errors: Vec::new(),
                        failed_items: Vec::new(),
                    });
                };
                let (finished, errors, failed) = tokio::join!(
                    connector.finished_items(batch_id),
                    connector.batch_errors(batch_id),
                    connector.batch_items(
                        batch_id,
                        Some(BatchItemStatus::Failed),
                        None,
                        FAILED_ITEMS_SHOWN
                    ),
                );
                Ok(BatchReading {
                    progress: Some(progress),
                    finished: finished?.into_iter().map(|(at, _)| at).collect(),
                    errors: errors?,
                    failed_items: failed?.items,
                })
            })
            .await;
        self.read(freshness, shared)
    }
}

/// One read that finished, and when.
struct Finished<V, E> {
    shared: Shared<V, E>,
    at: DateTime<Utc>,
}

impl<V, E> Clone for Finished<V, E> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
            at: self.at,
        }
    }
}

/// One key's reads: the latest finished, and the one under way.
struct Slot<V, E> {
    finished: Option<Finished<V, E>>,
    running: Option<Arc<OnceCell<Finished<V, E>>>>,
}

/// Single-flight reads of one kind, each kept for `ttl` by Runboard's clock (a test moves
/// past it rather than waiting).
pub struct SharedReads<K, V, E = ReadError> {
    ttl: Duration,
    clock: Clock,
    slots: Mutex<HashMap<K, Slot<V, E>>>,
}

impl<K: Eq + Hash + Clone, V, E> SharedReads<K, V, E> {
    pub fn new(ttl: Duration, clock: &Clock) -> Self {
        Self {
            ttl,
            clock: clock.clone(),
            slots: Mutex::new(HashMap::new()),
        }
    }

    fn current(&self, finished: &Finished<V, E>) -> bool {
        let kept = if finished.shared.is_ok() {
            self.ttl
        } else {
            FAILURE_KEPT
        };
        self.clock.since(finished.at) < kept
    }

    /// The figures for `key`: kept ones while current, else those of one read for everyone
    /// asking. `read` is given the time the read begins.
    pub async fn get<F, Fut>(&self, key: K, freshness: Freshness, read: F) -> Shared<V, E>
    where
        F: FnOnce(DateTime<Utc>) -> Fut,
        Fut: Future<Output = Result<V, E>>,
    {
        let running = {
            let mut slots = self.slots.lock().expect("no panic while holding the lock");
            if !slots.contains_key(&key) {
                // Filters and pages make many keys: forget those nobody asked for lately.
                slots.retain(|_, slot| {
                    slot.running.is_some()
                        || slot
                            .finished
                            .as_ref()
                            .is_some_and(|f| self.clock.since(f.at) < self.ttl * 2)
                });
            }
            let slot = slots.entry(key.clone()).or_insert(Slot {
                finished: None,
                running: None,
            });
            match (&slot.finished, &slot.running, freshness) {
                (Some(finished), _, Freshness::Shared) if self.current(finished) => {
                    return finished.shared.clone();
                }
                // A read is under way: who has something to look at meanwhile need not wait.
                (Some(finished), Some(_), Freshness::Shared) => return finished.shared.clone(),
                (_, Some(running), _) => running.clone(),
                (_, None, _) => slot.running.insert(Arc::new(OnceCell::new())).clone(),
            }
        };
        // The first caller reads; the others wait for it. Should the reader give up (its
        // request dropped), the next one waiting reads instead.
        let finished = running
            .get_or_init(|| async {
                let read_at = self.clock.now();
                let shared = read(read_at)
                    .await
                    .map(|value| Arc::new(Fresh { value, read_at }))
                    .map_err(Arc::new);
                Finished {
                    shared,
                    at: self.clock.now(),
                }
            })
            .await
            .clone();
        let mut slots = self.slots.lock().expect("no panic while holding the lock");
        if let Some(slot) = slots.get_mut(&key)
            && slot
                .running
                .as_ref()
                .is_some_and(|r| Arc::ptr_eq(r, &running))
        {
            slot.running = None;
            slot.finished = Some(finished.clone());
        }
        finished.shared
    }

    /// Drops the figures kept for `key`: the next caller reads again.
    fn forget(&self, key: &K) {
        let mut slots = self.slots.lock().expect("no panic while holding the lock");
        if let Some(slot) = slots.get_mut(key) {
            slot.finished = None;
        }
    }

    /// Keeps figures read elsewhere (by the poller) as the latest read of `key`.
    fn put(&self, key: K, fresh: Fresh<V>) {
        let mut slots = self.slots.lock().expect("no panic while holding the lock");
        let slot = slots.entry(key).or_insert(Slot {
            finished: None,
            running: None,
        });
        slot.finished = Some(Finished {
            shared: Ok(Arc::new(fresh)),
            at: self.clock.now(),
        });
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use runboard_model::ServiceName;

    use super::*;
    use crate::connector::ReadProblem;

    fn money(amount: i64) -> Money {
        Money {
            amount: amount.into(),
            currency: "EUR".into(),
        }
    }

    #[test]
    fn only_the_largest_sagas_are_kept() {
        let sagas = (0..1000).map(|i| (format!("s{i}"), money(i))).collect();
        let holding = SagasHolding::largest_of(sagas);
        assert_eq!(holding.total, 1000);
        assert_eq!(holding.largest.len(), SAGAS_SHOWN);
        assert_eq!(holding.largest[0], ("s999".to_owned(), money(999)));
        assert_eq!(holding.largest[SAGAS_SHOWN - 1].1, money(950));
    }

    async fn counted(reads: &AtomicUsize, fail: bool) -> Result<u32, ReadError> {
        reads.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(50)).await;
        if fail {
            Err(ReadError {
                service: "payments".parse::<ServiceName>().unwrap(),
                problem: ReadProblem::Unreachable("connection refused".into()),
            })
        } else {
            Ok(7)
        }
    }

    #[tokio::test]
    async fn many_callers_at_once_share_one_read_and_live_reads_again() {
        let shared = SharedReads::<&str, u32>::new(Duration::from_secs(60), &Clock::default());
        let reads = AtomicUsize::new(0);
        let all = (0..16).map(|_| shared.get("k", Freshness::Shared, |_| counted(&reads, false)));
        for figures in futures_util::future::join_all(all).await {
            assert_eq!(figures.unwrap().value, 7);
        }
        assert_eq!(reads.load(Ordering::SeqCst), 1, "one read for 16 callers");
        shared
            .get("k", Freshness::Shared, |_| counted(&reads, false))
            .await
            .unwrap();
        assert_eq!(reads.load(Ordering::SeqCst), 1, "kept for the interval");
        let live = (0..4).map(|_| shared.get("k", Freshness::Live, |_| counted(&reads, false)));
        futures_util::future::join_all(live).await;
        assert_eq!(
            reads.load(Ordering::SeqCst),
            2,
            "live callers at once share one read"
        );
    }

    #[tokio::test]
    async fn figures_forgotten_are_read_again_by_the_next_caller() {
        // What the poller does to the kept snapshots once it has recorded a poll.
        let shared = SharedReads::<&str, u32>::new(Duration::from_secs(60), &Clock::default());
        let reads = AtomicUsize::new(0);
        for _ in 0..3 {
            shared
                .get("k", Freshness::Shared, |_| counted(&reads, false))
                .await
                .unwrap();
        }
        assert_eq!(reads.load(Ordering::SeqCst), 1);
        shared.forget(&"k");
        shared
            .get("k", Freshness::Shared, |_| counted(&reads, false))
            .await
            .unwrap();
        assert_eq!(reads.load(Ordering::SeqCst), 2, "read again after forget");
    }

    #[tokio::test]
    async fn a_failed_read_is_kept_only_briefly() {
        let clock = Clock::default();
        clock.stop();
        let shared = SharedReads::<&str, u32>::new(Duration::from_secs(60), &clock);
        let reads = AtomicUsize::new(0);
        let failed = shared.get("k", Freshness::Shared, |_| counted(&reads, true));
        assert!(failed.await.is_err());
        let kept = shared.get("k", Freshness::Shared, |_| counted(&reads, false));
        assert!(
            kept.await.is_err(),
            "a crowd does not hammer a failing service"
        );
        clock.advance(FAILURE_KEPT);
        let recovered = shared.get("k", Freshness::Shared, |_| counted(&reads, false));
        assert_eq!(recovered.await.unwrap().value, 7);
        assert_eq!(reads.load(Ordering::SeqCst), 2);
    }
}

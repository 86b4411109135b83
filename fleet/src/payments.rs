//! Payments' transfers: event-sourced aggregates. Each transfer is a stream of
//! `transfer_event` rows; [`Transfer::apply`] folds them into its current state, and the
//! withheld-funds query is the same fold in SQL: money reserved and not yet released.

use std::str::FromStr;

use chrono::{DateTime, Utc};
use rand::Rng;
use rust_decimal::Decimal;

use crate::FleetError;
use crate::db::{Arg, Dialect, Tx};
use crate::mission_control::Effect;

/// The currencies transfers are made in.
const CURRENCIES: &[&str] = &["EUR", "USD", "GBP", "CHF"];

/// Payments' `withheld_funds` query on SQLite: `(saga_id, amount, currency)` of every failed or
/// stuck transfer (no progress for 10 minutes) that holds money, the amount as decimal text.
pub const WITHHELD_FUNDS_SQLITE: &str = "\
SELECT s.saga_id AS saga_id, r.amount AS amount, r.currency AS currency
FROM supervisor_view s
JOIN transfer_event r ON r.transfer_id = s.saga_id AND r.kind = 'funds_reserved'
WHERE NOT s.completed
  AND (s.error_message IS NOT NULL
       OR s.updated_at < strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now', '-600 seconds'))
  AND NOT EXISTS (SELECT 1 FROM transfer_event x
                  WHERE x.transfer_id = r.transfer_id AND x.seq > r.seq
                    AND x.kind IN ('settled', 'force_completed'))
ORDER BY s.saga_id";

/// Payments' `withheld_funds` query on PostgreSQL: as [`WITHHELD_FUNDS_SQLITE`], the amount numeric.
pub const WITHHELD_FUNDS_POSTGRES: &str = "\
SELECT s.saga_id AS saga_id, r.amount AS amount, r.currency AS currency
FROM supervisor_view s
JOIN transfer_event r ON r.transfer_id = s.saga_id AND r.kind = 'funds_reserved'
WHERE NOT s.completed
  AND (s.error_message IS NOT NULL OR s.updated_at < now() - interval '600 seconds')
  AND NOT EXISTS (SELECT 1 FROM transfer_event x
                  WHERE x.transfer_id = r.transfer_id AND x.seq > r.seq
                    AND x.kind IN ('settled', 'force_completed'))
ORDER BY s.saga_id";

/// A transfer's events as saga history: the same text on both databases (`||` and CAST
/// mean the same in each), amounts kept as text.
pub const SAGA_EVENTS: &str = "SELECT transfer_id AS saga_id, created_at AS at, kind, \
     TRIM(COALESCE(CAST(amount AS TEXT) || ' ' || currency, '') || ' ' || COALESCE(detail, '')) AS detail \
     FROM transfer_event";

/// What a transfer was asked to do, as facts `(saga_id, name, value)`: its accounts and
/// reference, from its `initiated` event. The same text on both databases.
pub const ENTITY_FACTS: &str = "\
SELECT transfer_id AS saga_id, 'from_account' AS name, from_account AS value FROM transfer_event WHERE kind = 'initiated' \
UNION ALL SELECT transfer_id, 'to_account', to_account FROM transfer_event WHERE kind = 'initiated' \
UNION ALL SELECT transfer_id, 'reference', reference FROM transfer_event WHERE kind = 'initiated'";

pub(crate) fn withheld_funds_query(backend: Dialect) -> &'static str {
    match backend {
        Dialect::Sqlite => WITHHELD_FUNDS_SQLITE,
        Dialect::Postgres => WITHHELD_FUNDS_POSTGRES,
    }
}

/// One event of a transfer, as appended.
#[derive(Debug, Default, sqlx::FromRow)]
pub(crate) struct Event {
    kind: String,
    amount: Option<String>,
    currency: Option<String>,
    from_account: Option<String>,
    to_account: Option<String>,
    reference: Option<String>,
    detail: Option<String>,
}

impl Event {
    pub(crate) fn kind(kind: &str) -> Event {
        Event {
            kind: kind.to_owned(),
            ..Event::default()
        }
    }

    pub(crate) fn detail(kind: &str, detail: &str) -> Event {
        Event {
            detail: Some(detail.to_owned()),
            ..Event::kind(kind)
        }
    }

    fn money(kind: &str, amount: Decimal, currency: &str) -> Event {
        Event {
            amount: Some(amount.to_string()),
            currency: Some(currency.to_owned()),
            ..Event::kind(kind)
        }
    }
}

/// How far a transfer got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, async_graphql::Enum)]
pub(crate) enum Stage {
    Initiated,
    FundsReserved,
    LedgerPosted,
    Settled,
    ForceCompleted,
}

/// A transfer's current state: the fold of its events.
#[derive(Debug, Clone, async_graphql::SimpleObject)]
#[graphql(complex)]
pub(crate) struct Transfer {
    pub(crate) id: async_graphql::ID,
    pub(crate) stage: Stage,
    /// Set while the transfer is failed; a retry clears it.
    pub(crate) error: Option<String>,
    #[graphql(skip)]
    pub(crate) amount: Decimal,
    pub(crate) currency: String,
    #[graphql(skip)]
    pub(crate) held: Decimal,
    pub(crate) from_account: String,
    pub(crate) to_account: String,
    pub(crate) reference: String,
    pub(crate) events: i32,
}

impl Transfer {
    /// The aggregate's `state_apply`: the state after `event`. Events before `initiated`
    /// cannot happen; the fold starts from it.
    fn apply(mut self, event: &Event) -> Transfer {
        self.events += 1;
        match event.kind.as_str() {
            "funds_reserved" => {
                self.held = self.amount;
                self.stage = Stage::FundsReserved;
            }
            "ledger_posted" => self.stage = Stage::LedgerPosted,
            "settled" => {
                self.held = Decimal::ZERO;
                self.stage = Stage::Settled;
            }
            "failed" => self.error = event.detail.clone(),
            "retried" => self.error = None,
            "force_completed" => {
                self.held = Decimal::ZERO;
                self.error = None;
                self.stage = Stage::ForceCompleted;
            }
            _ => {}
        }
        self
    }

    fn initiated(id: &str, event: &Event) -> Result<Transfer, FleetError> {
        let amount = event
            .amount
            .as_deref()
            .map(Decimal::from_str)
            .transpose()
            .map_err(|e| FleetError::Corrupt(format!("transfer {id}: bad amount: {e}")))?
            .ok_or_else(|| FleetError::Corrupt(format!("transfer {id}: no amount")))?;
        Ok(Transfer {
            id: id.into(),
            stage: Stage::Initiated,
            error: None,
            amount,
            currency: event.currency.clone().unwrap_or_default(),
            held: Decimal::ZERO,
            from_account: event.from_account.clone().unwrap_or_default(),
            to_account: event.to_account.clone().unwrap_or_default(),
            reference: event.reference.clone().unwrap_or_default(),
            events: 1,
        })
    }

    pub(crate) fn fold(id: &str, events: &[Event]) -> Result<Option<Transfer>, FleetError> {
        let Some((first, rest)) = events.split_first() else {
            return Ok(None);
        };
        let start = Transfer::initiated(id, first)?;
        Ok(Some(rest.iter().fold(start, Transfer::apply)))
    }
}

#[async_graphql::ComplexObject]
impl Transfer {
    /// The amount transferred, as decimal text.
    #[graphql(name = "amount")]
    async fn amount_text(&self) -> String {
        self.amount.to_string()
    }

    /// Money reserved from the source account and not yet settled or released, as decimal text.
    #[graphql(name = "held")]
    async fn held_text(&self) -> String {
        self.held.to_string()
    }
}

/// Loads a transfer's events and folds them; `None` when it has none.
pub(crate) async fn load(tx: &mut Tx, transfer_id: &str) -> Result<Option<Transfer>, FleetError> {
    let events: Vec<Event> = tx
        .fetch_all(
            "SELECT kind, CAST(amount AS TEXT) AS amount, currency, from_account, to_account, \
             reference, detail FROM transfer_event WHERE transfer_id = $1 ORDER BY seq",
            &[transfer_id.into()],
        )
        .await?;
    Transfer::fold(transfer_id, &events)
}

pub(crate) async fn find_by_reference(
    tx: &mut Tx,
    reference: &str,
) -> Result<Option<String>, FleetError> {
    #[derive(sqlx::FromRow)]
    struct Found {
        transfer_id: String,
    }
    let found: Option<Found> = tx
        .fetch_optional(
            "SELECT transfer_id FROM transfer_event WHERE reference = $1 LIMIT 1",
            &[reference.into()],
        )
        .await?;
    Ok(found.map(|f| f.transfer_id))
}

/// Appends `event` as the transfer's next event.
pub(crate) async fn append(
    tx: &mut Tx,
    backend: Dialect,
    transfer_id: &str,
    event: Event,
    now: DateTime<Utc>,
) -> Result<(), FleetError> {
    let sql = format!(
        "INSERT INTO transfer_event (transfer_id, seq, kind, amount, currency, from_account, \
         to_account, reference, detail, created_at) \
         SELECT $1, COALESCE(MAX(seq), 0) + 1, $2, {}, $4, $5, $6, $7, $8, $9 \
         FROM transfer_event WHERE transfer_id = $1",
        backend.numeric("$3")
    );
    tx.execute(
        &sql,
        &[
            transfer_id.into(),
            event.kind.into(),
            event.amount.into(),
            event.currency.into(),
            event.from_account.into(),
            event.to_account.into(),
            event.reference.into(),
            event.detail.into(),
            now.into(),
        ],
    )
    .await?;
    Ok(())
}

/// Opens a transfer the load generator made up.
pub(crate) async fn initiate_random(
    tx: &mut Tx,
    backend: Dialect,
    transfer_id: &str,
    now: DateTime<Utc>,
) -> Result<(), FleetError> {
    let event = {
        let mut rng = rand::rng();
        // Mostly euros, then dollars; a few pounds and francs.
        let currency = [
            "EUR", "EUR", "EUR", "EUR", "EUR", "USD", "USD", "USD", "GBP", "CHF",
        ][rng.random_range(0..10)];
        Event {
            from_account: Some(format!("acct-{}", rng.random_range(10_000..100_000))),
            to_account: Some(format!("acct-{}", rng.random_range(10_000..100_000))),
            reference: Some(format!("TRF-{}", &transfer_id[..8])),
            ..Event::money(
                "initiated",
                Decimal::new(rng.random_range(500..250_000), 2),
                currency,
            )
        }
    };
    append(tx, backend, transfer_id, event, now).await
}

/// Appends the event that finishing `step` makes.
pub(crate) async fn step_done(
    tx: &mut Tx,
    backend: Dialect,
    transfer_id: &str,
    step: &str,
    now: DateTime<Utc>,
) -> Result<(), FleetError> {
    let Some(transfer) = load(tx, transfer_id).await? else {
        return Ok(());
    };
    let event = match step {
        "reserve_funds" => Event::money("funds_reserved", transfer.amount, &transfer.currency),
        "post_to_ledger" => Event::kind("ledger_posted"),
        "settle" => Event::money("settled", transfer.amount, &transfer.currency),
        _ => return Ok(()),
    };
    append(tx, backend, transfer_id, event, now).await
}

/// A manual transfer's input, checked.
pub(crate) struct ManualTransfer {
    pub(crate) from_account: String,
    pub(crate) to_account: String,
    pub(crate) amount: Decimal,
    pub(crate) currency: String,
    pub(crate) reference: String,
}

impl ManualTransfer {
    pub(crate) fn parse(
        from_account: &str,
        to_account: &str,
        amount: &str,
        currency: &str,
        reference: &str,
    ) -> Result<ManualTransfer, FleetError> {
        let invalid = |m: String| Err(FleetError::Invalid(m));
        let amount_text = amount.trim();
        let Ok(amount) = Decimal::from_str_exact(amount_text) else {
            return invalid(format!(
                "amount {amount_text:?} is not a decimal number such as 12.34"
            ));
        };
        if amount <= Decimal::ZERO {
            return invalid(format!("amount {amount} must be greater than zero"));
        }
        if amount.scale() > 2 {
            return invalid(format!("amount {amount} has more than 2 decimal places"));
        }
        let currency = currency.trim().to_ascii_uppercase();
        if !CURRENCIES.contains(&currency.as_str()) {
            return invalid(format!(
                "currency {currency:?} is not one of {}",
                CURRENCIES.join(", ")
            ));
        }
        let (from_account, to_account, reference) =
            (from_account.trim(), to_account.trim(), reference.trim());
        if from_account.is_empty() || to_account.is_empty() {
            return invalid("fromAccount and toAccount are required".to_owned());
        }
        if from_account == to_account {
            return invalid("fromAccount and toAccount must differ".to_owned());
        }
        if reference.is_empty() {
            return invalid("reference is required".to_owned());
        }
        let mut amount = amount;
        amount.rescale(2);
        Ok(ManualTransfer {
            from_account: from_account.to_owned(),
            to_account: to_account.to_owned(),
            amount,
            currency,
            reference: reference.to_owned(),
        })
    }

    /// Books the transfer as a new aggregate, settled at once, with its saga row completed.
    pub(crate) async fn book(
        self,
        tx: &mut Tx,
        backend: Dialect,
        now: DateTime<Utc>,
    ) -> Result<Effect, FleetError> {
        if let Some(existing) = find_by_reference(tx, &self.reference).await? {
            return Err(FleetError::Invalid(format!(
                "reference {:?} is already used by transfer {existing}",
                self.reference
            )));
        }
        let transfer_id = uuid::Uuid::new_v4().to_string();
        let description = format!(
            "transfer {} {} from {} to {}",
            self.amount, self.currency, self.from_account, self.to_account
        );
        let events = [
            Event {
                from_account: Some(self.from_account),
                to_account: Some(self.to_account),
                reference: Some(self.reference.clone()),
                detail: Some("manual transfer".to_owned()),
                ..Event::money("initiated", self.amount, &self.currency)
            },
            Event::money("funds_reserved", self.amount, &self.currency),
            Event::kind("ledger_posted"),
            Event::money("settled", self.amount, &self.currency),
        ];
        for event in events {
            append(tx, backend, &transfer_id, event, now).await?;
        }
        tx.execute(
            "INSERT INTO saga (saga_id, saga_type, current_step, completed, error_message, fault, \
             stalled, note, created_at, updated_at) \
             VALUES ($1, 'manual_transfer', 'settle', $2, NULL, NULL, $3, $4, $5, $5)",
            &[
                transfer_id.into(),
                true.into(),
                false.into(),
                Arg::Text("manual transfer".to_owned()),
                now.into(),
            ],
        )
        .await?;
        // The reference names the entity: the same request previews and applies alike.
        Ok(Effect::new(
            &self.reference,
            description,
            Some((self.amount, self.currency)),
        ))
    }
}

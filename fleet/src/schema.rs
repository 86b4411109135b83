//! Each service database's tables, created idempotently on every start.
//!
//! The contract's relations (`supervisor_view`, `batch_run`, `batch_item`) have exactly the
//! contract's columns; `supervisor_view` and `batch_item` are views over tables that also
//! keep what the simulation needs (a saga's fault, whether it stalled; a payout's amount).

use crate::FleetError;
use crate::db::{Db, Dialect};

/// Types that differ between the dialects; the DDL below is written once with these slots.
struct Types {
    time: &'static str,
    boolean: &'static str,
    numeric: &'static str,
    serial_key: &'static str,
    create_view: &'static str,
}

fn types(backend: Dialect) -> Types {
    match backend {
        Dialect::Sqlite => Types {
            time: "TEXT",
            boolean: "INTEGER",
            numeric: "TEXT",
            serial_key: "INTEGER PRIMARY KEY AUTOINCREMENT",
            create_view: "CREATE VIEW IF NOT EXISTS",
        },
        Dialect::Postgres => Types {
            time: "TIMESTAMPTZ",
            boolean: "BOOLEAN",
            numeric: "NUMERIC",
            serial_key: "BIGSERIAL PRIMARY KEY",
            create_view: "CREATE OR REPLACE VIEW",
        },
    }
}

pub(crate) async fn ensure(db: &Db, with_transfers: bool) -> Result<(), FleetError> {
    let Types {
        time,
        boolean,
        numeric,
        serial_key,
        create_view,
    } = types(db.dialect());
    let mut ddl = format!(
        "CREATE TABLE IF NOT EXISTS saga (
            saga_id TEXT PRIMARY KEY,
            saga_type TEXT NOT NULL,
            current_step TEXT NOT NULL,
            completed {boolean} NOT NULL,
            error_message TEXT,
            -- the defect the saga ran into; a retry hits it again until the fix is deployed
            fault TEXT,
            -- the simulation's stuck sagas: nothing advances them until a retry
            stalled {boolean} NOT NULL,
            -- why it was force-completed
            note TEXT,
            created_at {time} NOT NULL,
            updated_at {time} NOT NULL
        );
        CREATE INDEX IF NOT EXISTS saga_updated_at ON saga (updated_at);
        CREATE INDEX IF NOT EXISTS saga_created_at ON saga (created_at, saga_id);
        CREATE INDEX IF NOT EXISTS saga_error_message ON saga (error_message)
            WHERE error_message IS NOT NULL;
        {create_view} supervisor_view AS
            SELECT saga_id, saga_type, current_step, completed, error_message, created_at, updated_at
            FROM saga;

        CREATE TABLE IF NOT EXISTS batch_run (
            batch_id TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            started_at {time} NOT NULL,
            finished_at {time}
        );
        CREATE TABLE IF NOT EXISTS payout_item (
            batch_id TEXT NOT NULL REFERENCES batch_run (batch_id),
            item_id TEXT NOT NULL,
            status TEXT NOT NULL,
            error TEXT,
            fault TEXT,
            amount {numeric} NOT NULL,
            currency TEXT NOT NULL,
            updated_at {time} NOT NULL,
            PRIMARY KEY (batch_id, item_id)
        );
        CREATE INDEX IF NOT EXISTS payout_item_status ON payout_item (batch_id, status);
        -- A batch's progress over time reads its finished items in the order they finished.
        CREATE INDEX IF NOT EXISTS payout_item_finished ON payout_item (batch_id, updated_at);
        {create_view} batch_item AS
            SELECT batch_id, item_id, status, error, updated_at FROM payout_item;

        -- the first response to each Idempotency-Key, written with the effects it reports
        CREATE TABLE IF NOT EXISTS idempotent_response (
            idempotency_key TEXT PRIMARY KEY,
            mutation TEXT NOT NULL,
            response TEXT NOT NULL,
            created_at {time} NOT NULL
        );
        CREATE TABLE IF NOT EXISTS mission_control_call (
            id {serial_key},
            received_at {time} NOT NULL,
            idempotency_key TEXT,
            mutation TEXT NOT NULL,
            variables TEXT NOT NULL,
            dry_run {boolean} NOT NULL,
            applied {boolean} NOT NULL,
            action TEXT,
            requester TEXT,
            approvers TEXT,
            error TEXT,
            -- the X-Runboard-Replica and X-Runboard-Lease-Epoch headers
            replica TEXT,
            lease_epoch BIGINT,
            -- the subject of the provider token the call carried
            caller TEXT
        );
        -- The highest lease epoch each Runboard action has called with: a real call from
        -- an older epoch (a replica that lost the lease) is refused, the fencing token's check.
        CREATE TABLE IF NOT EXISTS runboard_fence (
            action TEXT PRIMARY KEY,
            epoch BIGINT NOT NULL
        );"
    );
    if with_transfers {
        ddl.push_str(&format!(
            "
        CREATE TABLE IF NOT EXISTS transfer_event (
            transfer_id TEXT NOT NULL,
            seq INTEGER NOT NULL,
            kind TEXT NOT NULL,
            amount {numeric},
            currency TEXT,
            from_account TEXT,
            to_account TEXT,
            reference TEXT,
            detail TEXT,
            created_at {time} NOT NULL,
            PRIMARY KEY (transfer_id, seq)
        );
        CREATE INDEX IF NOT EXISTS transfer_event_reference ON transfer_event (reference)
            WHERE reference IS NOT NULL;"
        ));
    }
    db.execute_script(&ddl).await?;
    // A database made before the call log kept the lease or the caller: add its columns.
    for (columns, added) in [
        (
            "replica, lease_epoch",
            "ALTER TABLE mission_control_call ADD COLUMN replica TEXT;
             ALTER TABLE mission_control_call ADD COLUMN lease_epoch BIGINT;",
        ),
        (
            "caller",
            "ALTER TABLE mission_control_call ADD COLUMN caller TEXT;",
        ),
    ] {
        let probe = format!("SELECT {columns} FROM mission_control_call LIMIT 0");
        if db.execute(&probe, &[]).await.is_err() {
            db.execute_script(added).await?;
        }
    }
    Ok(())
}

//! Runboard's own store: SQLite by default, PostgreSQL in production.
//!
//! Both run the same queries (written with `$n` placeholders, which both accept);
//! only the DDL differs, so each has its own migrations directory. Domain modules
//! write their queries once for both through [`crate::db::on_pool!`].

use std::time::Duration;

use runboard_dialect::Dialect;

use crate::config::StoreConfig;
use crate::db::{OpenError, Pool, PoolSettings, on_pool};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the store: {0}")]
    Open(String),
    #[error("the store did not answer within {0:?}")]
    Timeout(Duration),
    #[error("store migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("store query failed: {0}")]
    Query(#[from] sqlx::Error),
}

impl StoreError {
    /// A stored value that does not parse: the store only ever receives parsed values,
    /// so someone edited it by hand.
    pub(crate) fn corrupt(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Query(sqlx::Error::Decode(Box::new(error)))
    }
}

impl From<OpenError> for StoreError {
    fn from(e: OpenError) -> Self {
        Self::Open(e.to_string())
    }
}

pub struct Store {
    pub(crate) pool: Pool,
}

impl Store {
    /// Connects (creating the SQLite file and its directory on first run); does not migrate.
    pub async fn connect(config: &StoreConfig) -> Result<Self, StoreError> {
        let settings = PoolSettings {
            max_connections: config.max_connections,
            acquire_timeout: config.acquire_timeout,
            owned: true,
            lazy: false,
            statement_timeout: None,
        };
        let pool = Pool::open(&config.effective_url(), &settings).await?;
        Ok(Self { pool })
    }

    /// Which database the store runs on.
    pub fn kind(&self) -> Dialect {
        self.pool.dialect()
    }

    /// Applies the migrations not yet applied; safe to run on every start and from several replicas.
    ///
    /// A store a newer release migrated (this release is a rollback) holds migrations this
    /// one does not know. They only add (README, "Upgrades and rollbacks"), so this release
    /// runs beside them, and warns, naming each.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let mut migrator = match &self.pool {
            Pool::Sqlite(_) => sqlx::migrate!("../migrations/sqlite"),
            Pool::Postgres(_) => sqlx::migrate!("../migrations/postgres"),
        };
        migrator.set_ignore_missing(true);
        on_pool!(self.pool, |pool| migrator.run(pool).await)?;
        let applied: Vec<(i64, String)> = on_pool!(self.pool, |pool| sqlx::query_as(
            "SELECT version, description FROM _sqlx_migrations ORDER BY version"
        )
        .fetch_all(pool)
        .await)?;
        for (version, description) in applied {
            if !migrator.version_exists(version) {
                tracing::warn!(
                    version,
                    description,
                    "the store holds migration {version} ({description}), which a newer release applied and this one does not know; running beside it, as a release's migrations only add"
                );
            }
        }
        Ok(())
    }

    /// Answers whether the store takes a query within `within`: readiness, not liveness.
    pub async fn check(&self, within: Duration) -> Result<(), StoreError> {
        let ping = async {
            on_pool!(self.pool, |pool| sqlx::query("SELECT 1")
                .execute(pool)
                .await
                .map(drop))?;
            Ok(())
        };
        tokio::time::timeout(within, ping)
            .await
            .map_err(|_| StoreError::Timeout(within))?
    }

    /// Waits for queries in flight and closes every connection.
    pub async fn close(&self) {
        self.pool.close().await
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    /// The last migration written before the rule that migrations only add (README,
    /// "Upgrades and rollbacks"); every later one must keep to it.
    const LAST_BEFORE_THE_RULE: i64 = 20261204000001;

    /// A comment that lets a migration through the check, with the reason a reviewer agreed
    /// to: an SQLite table rebuilt with every column it had, say.
    const WAIVER: &str = "-- rollback-safe:";

    /// What in one migration's SQL an older release could not run beside.
    fn breaks_an_older_release(sql: &str) -> Vec<&'static str> {
        let pattern = |p: &str| regex::Regex::new(&format!("(?is){p}")).unwrap();
        let rules = [
            (
                pattern(r"\bdrop\s+(table|column)\b"),
                "drops what an older release reads",
            ),
            (
                pattern(r"\brename\b"),
                "renames what an older release reads",
            ),
            (
                pattern(r"\balter\s+column\b.*\btype\b"),
                "changes a column's type",
            ),
            (
                pattern(r"\bset\s+not\s+null\b"),
                "makes a column NOT NULL that an older release leaves empty",
            ),
        ];
        let adds_column = pattern(r"\badd\s+column\b");
        let not_null = pattern(r"\bnot\s+null\b");
        let default = pattern(r"\bdefault\b");
        let code: String = sql
            .lines()
            .map(|line| line.split("--").next().unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n");
        let mut problems = Vec::new();
        for statement in code.split(';') {
            for (rule, problem) in &rules {
                if rule.is_match(statement) {
                    problems.push(*problem);
                }
            }
            if adds_column.is_match(statement)
                && not_null.is_match(statement)
                && !default.is_match(statement)
            {
                problems.push("adds a NOT NULL column without a default, which an older release's inserts leave out");
            }
        }
        problems
    }

    #[test]
    fn the_check_tells_what_only_adds_from_what_breaks_an_older_release() {
        for adds in [
            "CREATE TABLE tenant_policy (namespace TEXT PRIMARY KEY, audiences TEXT NOT NULL);",
            "ALTER TABLE service ADD COLUMN namespace TEXT;",
            "ALTER TABLE service ADD COLUMN retired BOOLEAN NOT NULL DEFAULT FALSE;",
            "CREATE INDEX service_namespace ON service (namespace); -- drop table in a comment",
        ] {
            assert_eq!(breaks_an_older_release(adds), Vec::<&str>::new(), "{adds}");
        }
        for breaks in [
            "DROP TABLE service_snapshot;",
            "ALTER TABLE action DROP COLUMN leased_until;",
            "ALTER TABLE service RENAME COLUMN name TO service_name;",
            "ALTER TABLE action ALTER COLUMN chunk TYPE BIGINT;",
            "ALTER TABLE action ALTER COLUMN reason SET NOT NULL;",
            "ALTER TABLE service\n  ADD COLUMN namespace TEXT NOT NULL;",
        ] {
            assert!(!breaks_an_older_release(breaks).is_empty(), "{breaks}");
        }
    }

    #[test]
    fn migrations_since_the_rule_only_add() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../migrations");
        let mut checked = 0;
        for store in ["sqlite", "postgres"] {
            for file in std::fs::read_dir(root.join(store)).unwrap() {
                let path = file.unwrap().path();
                let name = path.file_name().unwrap().to_string_lossy().into_owned();
                let version: i64 = name
                    .split('_')
                    .next()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or_else(|| {
                        panic!("{name}: a migration's name starts with its version")
                    });
                let sql = std::fs::read_to_string(&path).unwrap();
                if version <= LAST_BEFORE_THE_RULE || sql.contains(WAIVER) {
                    continue;
                }
                checked += 1;
                let problems = breaks_an_older_release(&sql);
                assert!(
                    problems.is_empty(),
                    "{store}/{name} {}: an older release still running (or rolled back to) breaks. Add now, remove in a later release (README, \"Upgrades and rollbacks\"), or, where an older release truly runs beside it, say why in a `{WAIVER}` comment",
                    problems.join("; ")
                );
            }
        }
        println!("{checked} migrations since the rule checked");
    }
}

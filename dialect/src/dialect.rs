//! Which database a statement is for, and the SQL texts that differ between them.

/// The database behind a pool: Runboard's store, a service's database, a test's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    /// The dialect a database URL is in: `sqlite:` URLs are SQLite, anything else PostgreSQL.
    pub fn of_url(url: &str) -> Self {
        if url.starts_with("sqlite:") {
            Dialect::Sqlite
        } else {
            Dialect::Postgres
        }
    }

    /// The database's clock in milliseconds since the Unix epoch, as an SQL expression:
    /// leases and poll slots are timed by the store, so that replicas whose own clocks
    /// drift still agree on them.
    pub fn now_ms(self) -> &'static str {
        match self {
            Dialect::Sqlite => "CAST(unixepoch('subsec') * 1000 AS INTEGER)",
            Dialect::Postgres => "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)",
        }
    }

    /// A lock on the rows of `table` (an alias in the query) that a concurrent UPDATE of
    /// them must wait for, as a locking clause; SQLite has one writer at a time and needs none.
    pub fn share_lock(self, table: &str) -> String {
        match self {
            Dialect::Sqlite => String::new(),
            Dialect::Postgres => format!("FOR SHARE OF {table}"),
        }
    }
    /// A bound decimal parameter headed for a numeric column: PostgreSQL needs the cast
    /// from text; SQLite keeps the text as it is, so no float ever touches the amount.
    pub fn numeric(self, param: &str) -> String {
        match self {
            Dialect::Sqlite => param.to_owned(),
            Dialect::Postgres => format!("CAST({param} AS NUMERIC)"),
        }
    }

    /// A random amount of money from a float expression: rounded to cents in SQL, so the
    /// stored value is an exact decimal (numeric on PostgreSQL, decimal text on SQLite).
    pub fn money(self, expr: &str) -> String {
        match self {
            Dialect::Sqlite => format!("printf('%.2f', {expr})"),
            Dialect::Postgres => format!("round(CAST({expr} AS NUMERIC), 2)"),
        }
    }

    /// A uniformly random number in [0, 1) per row.
    pub fn random(self) -> &'static str {
        match self {
            Dialect::Sqlite => "(abs(random()) / 9223372036854775808.0)",
            Dialect::Postgres => "random()",
        }
    }

    /// The integer part of a non-negative number.
    pub fn floor(self, expr: &str) -> String {
        match self {
            Dialect::Sqlite => format!("CAST({expr} AS INTEGER)"),
            Dialect::Postgres => format!("CAST(floor({expr}) AS INTEGER)"),
        }
    }

    /// The time `seconds` (an SQL expression) before now, as each backend stores timestamps:
    /// SQLite gets RFC 3339 UTC text with microseconds, like sqlx's own encoding.
    pub fn ago(self, seconds: &str) -> String {
        match self {
            // printf keeps tiny and huge numbers out of exponent notation, which SQLite's
            // date modifiers would not read.
            Dialect::Sqlite => format!(
                "(strftime('%Y-%m-%dT%H:%M:%f', 'now', '-' || printf('%.3f', {seconds}) || ' seconds') \
                 || printf('%03d', abs(random()) % 1000) || '+00:00')"
            ),
            Dialect::Postgres => format!("(now() - make_interval(secs => {seconds}))"),
        }
    }

    /// A lowercase, hyphenated version-4 UUID per row.
    pub fn uuid(self) -> &'static str {
        match self {
            Dialect::Sqlite => {
                "(lower(hex(randomblob(4))) || '-' || lower(hex(randomblob(2))) || '-4' \
                 || substr(lower(hex(randomblob(2))), 2) || '-' \
                 || substr('89ab', 1 + abs(random()) % 4, 1) || substr(lower(hex(randomblob(2))), 2) \
                 || '-' || lower(hex(randomblob(6))))"
            }
            Dialect::Postgres => "CAST(gen_random_uuid() AS TEXT)",
        }
    }

    /// `SELECT i FROM <series>` yields 1..=`count` (an SQL expression).
    pub fn series(self, count: &str) -> String {
        match self {
            Dialect::Sqlite => format!(
                "(WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {count}) \
                 SELECT i FROM n) AS series"
            ),
            Dialect::Postgres => {
                format!("generate_series(1, CAST({count} AS BIGINT)) AS series(i)")
            }
        }
    }
}

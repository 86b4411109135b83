use sqlx::Connection;
use sqlx::postgres::PgConnection;

/// The maintenance database tests create their databases from:
/// `RUNBOARD_TEST_POSTGRES_URL`, else the machine's server on 127.0.0.1:5432.
pub fn admin_url() -> String {
    std::env::var("RUNBOARD_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// A PostgreSQL database made for one test and dropped when the test ends, pass or fail.
pub struct TestDatabase {
    name: String,
    port: u16,
}

impl TestDatabase {
    pub async fn create() -> Self {
        let name = format!("runboard_test_{}", uuid::Uuid::new_v4().simple());
        let mut admin = PgConnection::connect(&admin_url()).await.unwrap_or_else(|e| {
            panic!(
                "PostgreSQL at {} is needed for this test and did not answer ({e}); start it with \
                 `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`",
                admin_url()
            )
        });
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await
            .expect("create the test database");
        let port = url::Url::parse(&admin_url())
            .expect("admin URL")
            .port()
            .unwrap_or(5432);
        Self { name, port }
    }

    /// Takes charge of dropping a database something else created, such as the demo fleet's.
    pub fn adopt(name: &str) -> Self {
        let port = url::Url::parse(&admin_url())
            .expect("admin URL")
            .port()
            .unwrap_or(5432);
        Self {
            name: name.to_owned(),
            port,
        }
    }

    pub fn url(&self) -> String {
        self.url_via_port(self.port)
    }

    /// The same database reached through another port, such as a [`crate::ChaosProxy`]'s.
    pub fn url_via_port(&self, port: u16) -> String {
        let mut url = url::Url::parse(&admin_url()).expect("admin URL");
        url.set_port(Some(port))
            .expect("a URL with a host takes a port");
        url.set_path(&self.name);
        url.into()
    }

    pub fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        // Drop runs outside any async context we could await in: use a thread with its own runtime.
        let name = self.name.clone();
        let dropped = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime")
                .block_on(async {
                    let mut admin = PgConnection::connect(&admin_url()).await?;
                    sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .execute(&mut admin)
                        .await
                        .map(|_| ())
                })
        })
        .join();
        if let Ok(Err(e)) = dropped {
            eprintln!("could not drop test database {}: {e}", self.name);
        }
    }
}

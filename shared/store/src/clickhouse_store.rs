//! [`ClickHouseStore`]: migrations, TTLs and inserts over ClickHouse's HTTP interface.

use std::fmt;
use std::future::Future;

use std::time::Duration;

use clickhouse::{Client, Row};
use clickhouse::{RowOwned, RowWrite};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::Serialize;

use crate::error::classify;
use crate::migrations::{self, AppliedMigration, MIGRATIONS, Migration, MigrationReport};
use crate::sink::{Store, StoreFuture};
use crate::{ClickHouseConfig, Rows, StoreError};

/// The ClickHouse store. Cheap to clone (the HTTP connection pool is shared).
#[derive(Clone)]
pub struct ClickHouseStore {
    /// Requests in the configured database.
    client: Client,
    /// Requests outside any database (`CREATE DATABASE`).
    server: Client,
    config: ClickHouseConfig,
}

impl fmt::Debug for ClickHouseStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClickHouseStore")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Row, Serialize)]
struct NewMigration<'a> {
    version: u32,
    name: &'a str,
    checksum: &'a str,
}

#[derive(Debug, Row, serde::Deserialize)]
struct EngineFull {
    engine_full: String,
}

/// The HTTP client: like the `clickhouse` crate's default (keep-alive, idle connections closed
/// before the server's 3 s keep-alive timeout), plus TCP_NODELAY, without which every INSERT
/// (headers and body in separate writes) waited ~40 ms for a delayed ACK, and a connect timeout.
fn base_client(config: &ClickHouseConfig) -> Client {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_keepalive(Some(Duration::from_secs(60)));
    connector.set_connect_timeout(Some(config.request_timeout));
    let http = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(2))
        .build(connector);
    Client::with_http_client(http).with_url(config.url.clone())
}

impl ClickHouseStore {
    /// A store for `config` (validated here); connects lazily, on the first request.
    pub fn new(config: &ClickHouseConfig) -> Result<Self, StoreError> {
        config.validate()?;
        let mut server = base_client(config);
        if let Some(user) = &config.user {
            server = server.with_user(user.clone());
        }
        if let Some(password) = &config.password {
            server = server.with_password(password.clone());
        }
        let client = server.clone().with_database(config.database.clone());
        Ok(Self {
            client,
            server,
            config: config.clone(),
        })
    }

    /// [`ClickHouseStore::new`], then [`ClickHouseStore::migrate`]: what a service does at
    /// start-up.
    pub async fn connect(config: &ClickHouseConfig) -> Result<(Self, MigrationReport), StoreError> {
        let store = Self::new(config)?;
        let report = store.migrate().await?;
        Ok((store, report))
    }

    /// The configuration.
    pub fn config(&self) -> &ClickHouseConfig {
        &self.config
    }

    /// The database the store writes to.
    pub fn database(&self) -> &str {
        &self.config.database
    }

    /// The underlying client, bound to the store's database (for ad-hoc queries).
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Runs `future` under the configured request timeout, classifying its error.
    pub(crate) async fn timed<T>(
        &self,
        future: impl Future<Output = Result<T, clickhouse::error::Error>>,
    ) -> Result<T, StoreError> {
        match tokio::time::timeout(self.config.request_timeout, future).await {
            Ok(result) => result.map_err(classify),
            Err(_) => Err(StoreError::Timeout(self.config.request_timeout)),
        }
    }

    /// Checks that the server answers and the database exists.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.timed(self.client.query_raw("SELECT 1").execute())
            .await
    }

    /// Runs one statement in the store's database (no `?` binds are processed), e.g.
    /// `OPTIMIZE TABLE incidents FINAL`.
    pub async fn execute(&self, sql: &str) -> Result<(), StoreError> {
        self.timed(self.client.query_raw(sql).execute()).await
    }

    /// Creates the database when missing, applies [`MIGRATIONS`] and the configured TTLs.
    pub async fn migrate(&self) -> Result<MigrationReport, StoreError> {
        self.migrate_with(MIGRATIONS).await
    }

    /// [`ClickHouseStore::migrate`] with another list of migrations (tools and tests).
    pub async fn migrate_with(
        &self,
        migrations: &[Migration],
    ) -> Result<MigrationReport, StoreError> {
        migrations::check_order(migrations)?;
        let database = self.database();
        // `database` is a validated identifier (ClickHouseConfig::validate).
        self.timed(
            self.server
                .query_raw(&format!("CREATE DATABASE IF NOT EXISTS {database}"))
                .execute(),
        )
        .await?;
        self.execute(migrations::SCHEMA_MIGRATIONS_DDL).await?;
        let applied = self.applied_migrations().await?;
        migrations::verify_applied(database, migrations, &applied)?;

        let mut report = MigrationReport::default();
        for migration in migrations {
            if applied.iter().any(|a| a.version == migration.version) {
                report.already_applied.push(migration.version);
                continue;
            }
            tracing::info!(
                database,
                version = migration.version,
                name = migration.name,
                "applying migration"
            );
            for statement in migration.statements() {
                // Nested columns as parallel arrays (`root_causes.service`), whatever the
                // server's default.
                let query = self
                    .client
                    .query_raw(&statement)
                    .with_setting("flatten_nested", "1");
                self.timed(query.execute()).await?;
            }
            let checksum = migration.checksum();
            let record = NewMigration {
                version: migration.version,
                name: migration.name,
                checksum: &checksum,
            };
            self.timed(async {
                let mut insert = self
                    .client
                    .insert::<NewMigration<'_>>("schema_migrations")
                    .await?;
                insert.write(&record).await?;
                insert.end().await
            })
            .await?;
            report.applied.push(migration.version);
        }
        report.ttl_changed = self.apply_ttls().await?;
        Ok(report)
    }

    /// The migrations recorded in the database, by version.
    pub async fn applied_migrations(&self) -> Result<Vec<AppliedMigration>, StoreError> {
        self.timed(
            self.client
                .query_raw(
                    "SELECT version, name, checksum FROM schema_migrations FINAL ORDER BY version",
                )
                .fetch_all::<AppliedMigration>(),
        )
        .await
    }

    /// Sets each table's TTL to the configured one where it differs (`MODIFY TTL`, or
    /// `REMOVE TTL` for 0 days); returns the tables changed. Run by
    /// [`ClickHouseStore::migrate`].
    pub async fn apply_ttls(&self) -> Result<Vec<String>, StoreError> {
        let mut changed = Vec::new();
        for (table, column, days) in self.config.ttl.tables() {
            let current = self
                .timed(
                    self.server
                        .query(
                            "SELECT engine_full FROM system.tables WHERE database = ? AND name = ?",
                        )
                        .bind(self.database())
                        .bind(table)
                        .fetch_optional::<EngineFull>(),
                )
                .await?;
            let Some(EngineFull { engine_full }) = current else {
                // A table of a migration this list does not contain (tests with a subset).
                continue;
            };
            let has_ttl = engine_full.contains(" TTL ");
            let statement = if days == 0 {
                has_ttl.then(|| format!("ALTER TABLE {table} REMOVE TTL"))
            } else {
                // ClickHouse prints `INTERVAL n DAY` as `toIntervalDay(n)`.
                let wanted = format!("TTL toDateTime({column}) + toIntervalDay({days})");
                (!engine_full.contains(&wanted)).then(|| {
                    format!(
                        "ALTER TABLE {table} MODIFY TTL toDateTime({column}) + INTERVAL {days} DAY"
                    )
                })
            };
            if let Some(statement) = statement {
                tracing::info!(database = self.database(), table, days, "setting table TTL");
                self.execute(&statement).await?;
                changed.push(table.to_owned());
            }
        }
        Ok(changed)
    }

    /// Inserts `rows` into `table` as one INSERT; returns after the server acknowledged it.
    pub async fn insert_table<T>(&self, table: &str, rows: &[T]) -> Result<(), StoreError>
    where
        T: RowOwned + RowWrite + Sync,
    {
        if rows.is_empty() {
            return Ok(());
        }
        let timeout = Some(self.config.request_timeout);
        self.timed(async {
            let mut insert = self
                .client
                .insert::<T>(table)
                .await?
                .with_timeouts(timeout, timeout);
            for row in rows {
                insert.write(row).await?;
            }
            insert.end().await
        })
        .await
    }

    /// Inserts every table's rows (one INSERT per non-empty table).
    pub async fn insert_rows(&self, rows: &Rows) -> Result<(), StoreError> {
        self.insert_table("graph_nodes", &rows.graph_nodes).await?;
        self.insert_table("graph_edges", &rows.graph_edges).await?;
        self.insert_table("anomaly_scores", &rows.anomaly_scores)
            .await?;
        self.insert_table("forecasts", &rows.forecasts).await?;
        self.insert_table("incidents", &rows.incidents).await
    }
}

impl Store for ClickHouseStore {
    fn insert<'a>(&'a self, rows: &'a Rows) -> StoreFuture<'a, ()> {
        Box::pin(self.insert_rows(rows))
    }

    fn kind(&self) -> &'static str {
        "clickhouse"
    }
}

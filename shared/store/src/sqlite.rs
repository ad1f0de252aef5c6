//! [`SqliteStore`]: the embedded sink of the all-in-one mode, one SQLite file behind the same
//! [`Store`] trait, readable with the `sqlite3` shell or any SQLite client.
//!
//! Same tables and columns as ClickHouse (`migrations/sqlite/*.sql`); the dedup keys are
//! PRIMARY KEYs and inserts are upserts, so a re-delivered row replaces its copy immediately
//! (incidents only by a version at least as high). Map, Array and Nested columns are JSON text.
//! Each [`Store::insert`] is one transaction, committed with `synchronous = FULL` in WAL mode
//! before it returns, so acking after it is safe. No TTLs: it is meant for demos and single
//! machines; delete old rows with SQL when needed.
//!
//! ```text
//! sqlite3 meshwatch.db "SELECT incident_id, status, root_causes->>'$[0].service' FROM incidents"
//! ```

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OptionalExtension as _, params};

use crate::migrations::{self, AppliedMigration, Migration};
use crate::sink::{Store, StoreFuture};
use crate::{AnomalyScoreRow, ForecastRow, IncidentRow, Rows, StoreError};

/// The SQLite schema, in order.
pub const SQLITE_MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    name: "schema",
    sql: include_str!("../migrations/sqlite/0001_schema.sql"),
}];

/// The embedded sink. Cheap to clone (one connection behind a mutex; writes run on tokio's
/// blocking pool).
#[derive(Debug, Clone)]
pub struct SqliteStore {
    path: PathBuf,
    connection: Arc<Mutex<Connection>>,
}

fn embedded(path: &Path, error: impl std::fmt::Display) -> StoreError {
    StoreError::Embedded {
        path: path.display().to_string(),
        message: error.to_string(),
    }
}

impl SqliteStore {
    /// Opens (or creates) the database file and applies the schema.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| embedded(&path, e))?;
        }
        let connection = Connection::open(&path).map_err(|e| embedded(&path, e))?;
        connection
            .execute_batch(
                "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA busy_timeout = 5000;",
            )
            .map_err(|e| embedded(&path, e))?;
        migrate(&path, &connection, SQLITE_MIGRATIONS)?;
        Ok(Self {
            path,
            connection: Arc::new(Mutex::new(connection)),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` with the connection on the blocking pool.
    async fn with_connection<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        let connection = Arc::clone(&self.connection);
        let path = self.path.clone();
        let joined = tokio::task::spawn_blocking(move || {
            let mut connection = connection
                .lock()
                .map_err(|_| embedded(&path, "connection mutex poisoned by a panic"))?;
            f(&mut connection).map_err(|e| embedded(&path, e))
        })
        .await;
        joined.map_err(|e| embedded(&self.path, e))?
    }

    /// Writes `rows` in one transaction.
    pub async fn insert_rows(&self, rows: Rows) -> Result<(), StoreError> {
        self.with_connection(move |connection| {
            let tx = connection.transaction()?;
            insert_all(&tx, &rows)?;
            tx.commit()
        })
        .await
    }

    /// The latest incidents of `graph` opened at or after `since_ms`, most recently updated
    /// first (like the ClickHouse query `latest_incidents`).
    pub async fn latest_incidents(
        &self,
        graph: &str,
        since_ms: i64,
        limit: u32,
    ) -> Result<Vec<IncidentRow>, StoreError> {
        let graph = graph.to_owned();
        self.with_connection(move |connection| {
            let mut statement = connection.prepare(
                "SELECT graph, incident_id, kind, status, opened_at, updated_at, resolved_at, \
                 severity, services, root_causes, version FROM incidents \
                 WHERE graph = ?1 AND opened_at >= ?2 ORDER BY updated_at DESC, incident_id LIMIT ?3",
            )?;
            let rows = statement.query_map(params![graph, since_ms, limit], |row| {
                let services: String = row.get(8)?;
                let root_causes: String = row.get(9)?;
                let mut incident = IncidentRow {
                    graph: row.get(0)?,
                    incident_id: row.get(1)?,
                    kind: row.get(2)?,
                    status: row.get(3)?,
                    opened_at: row.get(4)?,
                    updated_at: row.get(5)?,
                    resolved_at: row.get(6)?,
                    severity: row.get(7)?,
                    services: from_json(8, &services)?,
                    root_cause_services: Vec::new(),
                    root_cause_scores: Vec::new(),
                    root_cause_evidence: Vec::new(),
                    version: u64::try_from(row.get::<_, i64>(10)?).unwrap_or_default(),
                };
                for cause in from_json::<Vec<JsonRootCause>>(9, &root_causes)? {
                    incident.push_root_cause(cause.service, cause.score, cause.evidence);
                }
                Ok(incident)
            })?;
            rows.collect()
        })
        .await
    }

    /// The scores of `service` for windows starting in `[from_ms, to_ms)`, oldest first.
    pub async fn service_scores(
        &self,
        graph: &str,
        service: &str,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<AnomalyScoreRow>, StoreError> {
        let (graph, service) = (graph.to_owned(), service.to_owned());
        self.with_connection(move |connection| {
            let mut statement = connection.prepare(
                "SELECT graph, service, window_start, window_ms, model_version, score, threshold, \
                 is_anomaly, present, contributions FROM anomaly_scores \
                 WHERE graph = ?1 AND service = ?2 AND window_start >= ?3 AND window_start < ?4 \
                 ORDER BY window_start, model_version",
            )?;
            let rows = statement.query_map(params![graph, service, from_ms, to_ms], |row| {
                let contributions: String = row.get(9)?;
                Ok(AnomalyScoreRow {
                    graph: row.get(0)?,
                    service: row.get(1)?,
                    window_start: row.get(2)?,
                    window_ms: row.get(3)?,
                    model_version: row.get(4)?,
                    score: row.get(5)?,
                    threshold: row.get(6)?,
                    is_anomaly: row.get(7)?,
                    present: row.get(8)?,
                    contributions: from_json(9, &contributions)?,
                })
            })?;
            rows.collect()
        })
        .await
    }

    /// The forecasts of `service` whose target window starts in `[from_ms, to_ms)`.
    pub async fn service_forecasts(
        &self,
        graph: &str,
        service: &str,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<ForecastRow>, StoreError> {
        let (graph, service) = (graph.to_owned(), service.to_owned());
        self.with_connection(move |connection| {
            let mut statement = connection.prepare(
                "SELECT graph, service, metric, issued_at, target_time, horizon, value, lower, \
                 upper, model_version FROM forecasts \
                 WHERE graph = ?1 AND service = ?2 AND target_time >= ?3 AND target_time < ?4 \
                 ORDER BY metric, target_time, horizon, model_version",
            )?;
            let rows = statement.query_map(params![graph, service, from_ms, to_ms], |row| {
                Ok(ForecastRow {
                    graph: row.get(0)?,
                    service: row.get(1)?,
                    metric: row.get(2)?,
                    issued_at: row.get(3)?,
                    target_time: row.get(4)?,
                    horizon: row.get(5)?,
                    value: row.get(6)?,
                    lower: row.get(7)?,
                    upper: row.get(8)?,
                    model_version: row.get(9)?,
                })
            })?;
            rows.collect()
        })
        .await
    }

    /// Rows in `table` (one of the five tables).
    pub async fn count(&self, table: &'static str) -> Result<u64, StoreError> {
        if !migrations_tables().contains(&table) {
            return Err(embedded(&self.path, format!("no table {table}")));
        }
        self.with_connection(move |connection| {
            connection.query_row(&format!("SELECT count(*) FROM {table}"), [], |row| {
                Ok(u64::try_from(row.get::<_, i64>(0)?).unwrap_or_default())
            })
        })
        .await
    }
}

fn migrations_tables() -> [&'static str; 5] {
    [
        "graph_nodes",
        "graph_edges",
        "anomaly_scores",
        "incidents",
        "forecasts",
    ]
}

impl Store for SqliteStore {
    fn insert<'a>(&'a self, rows: &'a Rows) -> StoreFuture<'a, ()> {
        Box::pin(self.insert_rows(rows.clone()))
    }

    fn kind(&self) -> &'static str {
        "sqlite"
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
struct JsonRootCause {
    service: String,
    score: f64,
    evidence: String,
}

/// SQLite integers are signed: counts and versions beyond i64::MAX (never seen) saturate.
fn int(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn to_json<T: serde::Serialize>(value: &T) -> rusqlite::Result<String> {
    serde_json::to_string(value).map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))
}

fn from_json<T: serde::de::DeserializeOwned>(column: usize, text: &str) -> rusqlite::Result<T> {
    serde_json::from_str(text).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(column, rusqlite::types::Type::Text, Box::new(e))
    })
}

fn insert_all(tx: &rusqlite::Transaction<'_>, rows: &Rows) -> rusqlite::Result<()> {
    {
        let mut statement = tx.prepare(
            "INSERT OR REPLACE INTO graph_nodes (graph, window_start, window_ms, service, kind, \
             requests, errors, latency_p50_ms, latency_p95_ms, latency_p99_ms, latency_mean_ms, \
             out_calls, out_errors, out_latency_p99_ms, in_gap_p99_ms, spans, cpu_utilization, \
             memory_bytes) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, \
             ?15, ?16, ?17, ?18)",
        )?;
        for n in &rows.graph_nodes {
            statement.execute(params![
                n.graph,
                n.window_start,
                n.window_ms,
                n.service,
                n.kind,
                int(n.requests),
                int(n.errors),
                n.latency_p50_ms,
                n.latency_p95_ms,
                n.latency_p99_ms,
                n.latency_mean_ms,
                int(n.out_calls),
                int(n.out_errors),
                n.out_latency_p99_ms,
                n.in_gap_p99_ms,
                int(n.spans),
                n.cpu_utilization,
                n.memory_bytes,
            ])?;
        }
    }
    {
        let mut statement = tx.prepare(
            "INSERT OR REPLACE INTO graph_edges (graph, window_start, window_ms, caller, callee, \
             connection_type, calls, errors, paired_calls, client_p50_ms, client_p99_ms, \
             server_p99_ms, gap_p99_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, \
             ?12, ?13)",
        )?;
        for e in &rows.graph_edges {
            statement.execute(params![
                e.graph,
                e.window_start,
                e.window_ms,
                e.caller,
                e.callee,
                e.connection_type,
                int(e.calls),
                int(e.errors),
                int(e.paired_calls),
                e.client_p50_ms,
                e.client_p99_ms,
                e.server_p99_ms,
                e.gap_p99_ms,
            ])?;
        }
    }
    {
        let mut statement = tx.prepare(
            "INSERT OR REPLACE INTO anomaly_scores (graph, service, window_start, window_ms, \
             model_version, score, threshold, is_anomaly, present, contributions) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        )?;
        for s in &rows.anomaly_scores {
            statement.execute(params![
                s.graph,
                s.service,
                s.window_start,
                s.window_ms,
                s.model_version,
                s.score,
                s.threshold,
                s.is_anomaly,
                s.present,
                to_json(&s.contributions)?,
            ])?;
        }
    }
    {
        let mut statement = tx.prepare(
            "INSERT OR REPLACE INTO forecasts (graph, service, metric, issued_at, target_time, \
             horizon, value, lower, upper, model_version) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        )?;
        for f in &rows.forecasts {
            statement.execute(params![
                f.graph,
                f.service,
                f.metric,
                f.issued_at,
                f.target_time,
                f.horizon,
                f.value,
                f.lower,
                f.upper,
                f.model_version,
            ])?;
        }
    }
    // Incidents: an older version arriving late must not replace a newer one.
    let mut statement = tx.prepare(
        "INSERT INTO incidents (graph, incident_id, kind, status, opened_at, updated_at, \
         resolved_at, severity, services, root_causes, version) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11) \
         ON CONFLICT (graph, opened_at, incident_id) DO UPDATE SET kind = excluded.kind, \
         status = excluded.status, updated_at = excluded.updated_at, \
         resolved_at = excluded.resolved_at, severity = excluded.severity, \
         services = excluded.services, root_causes = excluded.root_causes, \
         version = excluded.version, inserted_at = excluded.inserted_at \
         WHERE excluded.version >= incidents.version",
    )?;
    for i in &rows.incidents {
        let causes: Vec<JsonRootCause> = i
            .root_causes()
            .map(|(service, score, evidence)| JsonRootCause {
                service: service.to_owned(),
                score,
                evidence: evidence.to_owned(),
            })
            .collect();
        statement.execute(params![
            i.graph,
            i.incident_id,
            i.kind,
            i.status,
            i.opened_at,
            i.updated_at,
            i.resolved_at,
            i.severity,
            to_json(&i.services)?,
            to_json(&causes)?,
            int(i.version),
        ])?;
    }
    Ok(())
}

/// Applies `migrations` not yet recorded in `schema_migrations` (same bookkeeping as ClickHouse:
/// version, name, checksum, applied_at; a changed applied migration is refused).
fn migrate(path: &Path, connection: &Connection, list: &[Migration]) -> Result<(), StoreError> {
    migrations::check_order(list)?;
    let sql = |e: rusqlite::Error| embedded(path, e);
    connection
        .execute_batch(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, \
                 name TEXT NOT NULL, checksum TEXT NOT NULL, applied_at INTEGER NOT NULL \
                 DEFAULT (CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)))",
        )
        .map_err(sql)?;
    let mut applied = Vec::new();
    for migration in list {
        let record = connection
            .query_row(
                "SELECT version, name, checksum FROM schema_migrations WHERE version = ?1",
                [migration.version],
                |row| {
                    Ok(AppliedMigration {
                        version: row.get(0)?,
                        name: row.get(1)?,
                        checksum: row.get(2)?,
                    })
                },
            )
            .optional()
            .map_err(sql)?;
        applied.extend(record);
    }
    migrations::verify_applied(&path.display().to_string(), list, &applied)?;
    for migration in list {
        if applied.iter().any(|a| a.version == migration.version) {
            continue;
        }
        // One transaction per migration: the schema and its record commit together.
        let mut batch = String::from("BEGIN IMMEDIATE;\n");
        batch.push_str(migration.sql);
        batch.push_str("\nINSERT INTO schema_migrations (version, name, checksum) VALUES (");
        batch.push_str(&format!(
            "{}, '{}', '{}');\nCOMMIT;",
            migration.version,
            migration.name.replace('\'', "''"),
            migration.checksum()
        ));
        if let Err(error) = connection.execute_batch(&batch) {
            let _ = connection.execute_batch("ROLLBACK");
            return Err(sql(error));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_changed_migration_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("m.db");
        let connection = Connection::open(&path).expect("open");
        let first = [Migration {
            version: 1,
            name: "one",
            sql: "CREATE TABLE IF NOT EXISTS t (a INTEGER);",
        }];
        migrate(&path, &connection, &first).expect("applies");
        migrate(&path, &connection, &first).expect("idempotent");
        let changed = [Migration {
            sql: "CREATE TABLE IF NOT EXISTS t (a TEXT);",
            ..first[0]
        }];
        let error = migrate(&path, &connection, &changed).expect_err("changed");
        assert!(error.to_string().contains("migration 1 (one)"), "{error}");
    }
}

//! Meshwatch store: where the results end up (ARCHITECTURE.md §7).
//!
//! - [`ClickHouseStore`]: ClickHouse over its HTTP interface (crate `clickhouse` 0.15, RowBinary
//!   checked against the table schema): versioned [`migrations`], configurable TTLs,
//!   inserts, and the documented [queries].
//! - [`Store`]: the trait the aggregator writes through; [`ClickHouseStore`] implements it, and so
//!   does `SqliteStore` (feature `sqlite`, on by default), the embedded sink of the all-in-one
//!   mode: one SQLite file with the same tables, readable with the `sqlite3` shell.
//! - [`Writer`]: batches rows in front of a [`Store`] (rows, bytes, age — [`BatchConfig`]) and
//!   hands back the acknowledgement tokens only after the store acknowledged the rows.
//! - Row types, one per table ([`GraphNodeRow`], [`GraphEdgeRow`], [`AnomalyScoreRow`],
//!   [`IncidentRow`], [`ForecastRow`]), grouped in [`Rows`]; independent of the other crates.
//! - [`StoreError`], with [`StoreError::is_retryable`]: connection refused or reset, timeouts,
//!   HTTP 5xx and "busy" server codes (`TOO_MANY_PARTS`, `MEMORY_LIMIT_EXCEEDED`, ...) are
//!   retryable; a schema mismatch, a rejected query or a changed migration is not.
//!
//! # Schema (database `meshwatch`, configurable)
//!
//! | table | engine | ORDER BY (= dedup key) | partition, TTL column |
//! |---|---|---|---|
//! | `graph_nodes` | ReplacingMergeTree | graph, window_start, service | day of window_start |
//! | `graph_edges` | ReplacingMergeTree | graph, window_start, caller, callee | day of window_start |
//! | `anomaly_scores` | ReplacingMergeTree | graph, service, window_start, model_version | day of window_start |
//! | `incidents` | ReplacingMergeTree(version) | graph, opened_at, incident_id | day of opened_at; TTL by updated_at |
//! | `forecasts` | ReplacingMergeTree | graph, service, metric, target_time, horizon, model_version | day of issued_at |
//! | `schema_migrations` | ReplacingMergeTree(applied_at) | version | — |
//!
//! The SQL is in `shared/store/migrations/*.sql` (the one source of truth; comments there give
//! every choice). In short:
//! - Times are `DateTime64(3, 'UTC')` (Unix ms `i64` in Rust); graph, service, metric, kind,
//!   model_version are `LowCardinality(String)`.
//! - Codecs: `DoubleDelta` on times, `T64` on counters, `Gorilla` on the float series stored
//!   side by side in time order (scores, forecasts), plain `ZSTD(1)` elsewhere.
//! - Every table has `inserted_at DateTime64(3) DEFAULT now64(3)`, for delay measurements.
//! - `anomaly_scores.contributions` is `Map(LowCardinality(String), Float32)` in the
//!   detector's order (`contributions['latency_p99']`); `incidents.root_causes` is
//!   `Nested(service, score, evidence)` (arrays `root_causes.service`, ... of equal length),
//!   best first, evidence as JSON; `ARRAY JOIN root_causes` gives one row per candidate.
//!
//! ## No duplicates on re-delivery
//!
//! JetStream delivers at least once, and a failed batch is written again. Every row has a
//! deterministic key (the ORDER BY above, made of graph, window, service, model version...,
//! never of arrival time), and the Replacing engines collapse rows with equal keys when parts
//! merge. Merges happen in the background, so **readers must use `FINAL`** (as every query in
//! `queries/` does) or `argMax(column, version)` grouped by the key; `count()` without FINAL
//! can count a re-delivered window twice until the next merge (`OPTIMIZE TABLE t FINAL`
//! forces it). Incidents are versioned: each change is a new row with a higher `version`, and
//! FINAL returns the latest.
//!
//! ## TTLs
//!
//! [`TtlConfig`] (days per table group; 0 = keep forever: graph 7, scores 30, incidents 365,
//! forecasts 30) is applied after the migrations by [`ClickHouseStore::apply_ttls`], as
//! `ALTER TABLE t MODIFY TTL toDateTime(col) + INTERVAL n DAY` only where the table's current TTL
//! differs, so changing the configuration and restarting changes the retention. Tables are
//! partitioned by day and set `ttl_only_drop_parts = 1`: expired days are dropped as whole
//! parts instead of being rewritten.
//!
//! ## Migrations
//!
//! [`ClickHouseStore::migrate`] (called by [`ClickHouseStore::connect`] at start-up, and the
//! thing `meshwatch migrate --url URL [--database DB] [--status]` runs) creates the database if missing, then the
//! `schema_migrations` table, then applies each migration of [`MIGRATIONS`] not yet recorded,
//! recording `(version, name, checksum, applied_at)`. A recorded migration whose text changed
//! since is refused with [`StoreError::MigrationChanged`], naming it. Statements are
//! idempotent (`IF NOT EXISTS`), so two processes starting at once are safe: both may run a
//! migration, both succeed, one record survives. See [`migrations`].
//!
//! ## Queries (`queries/*.sql`, [`queries`])
//!
//! | query | for | reads |
//! |---|---|---|
//! | `latest_incidents` | the latest incidents of a graph | `incidents FINAL` by (graph, opened_at ≥ since), newest update first |
//! | `service_scores` | a service's scores over time | `anomaly_scores FINAL`, one key range |
//! | `service_forecasts` | a service's forecasts over time | `forecasts FINAL`, one key range per metric |
//! | `graph_nodes_at`, `graph_edges_at`, `window_scores` | the graph at a time | one window of one graph |
//!
//! They take ClickHouse query parameters, so they run unchanged over HTTP:
//!
//! ```text
//! curl -sS "$CLICKHOUSE_URL/?database=meshwatch&param_graph=prod&param_since_ms=0&param_limit=10" \
//!      --data-binary @shared/store/queries/latest_incidents.sql
//! ```
//!
//! # Throughput
//!
//! One INSERT per table per flush; each INSERT creates a part, so batch: measured on the
//! 2-core dev machine against the local ClickHouse 26.9, debug build, 200 rows per window
//! (an ad-hoc measurement during development; a `meshwatch bench` for the store is still to
//! be written): 1 window per flush ~47 windows/s (~9k rows/s), 10 ~340 windows/s (~68k
//! rows/s), 100 ~1400 windows/s (~280k rows/s). The HTTP client sets TCP_NODELAY: without it each INSERT waited ~40 ms (Nagle + delayed ACK)
//! and a 1-window flush ran at ~8 windows/s.
//!
//! # Running ClickHouse locally (no Docker)
//!
//! `scripts/install-clickhouse.sh` installs ClickHouse 26.9 from PyPI (`chdb-core==26.9.0`, the
//! full server, into `$MESHWATCH_CACHE/venv-clickhouse`) with a launcher that serves the
//! standard HTTP interface. `scripts/clickhouse.sh start|stop|status` runs one on a free
//! loopback port and writes `CLICKHOUSE_URL` to `$MESHWATCH_CACHE/run/clickhouse.env`:
//!
//! ```text
//! scripts/clickhouse.sh start >/dev/null
//! set -a; . "${MESHWATCH_CACHE:-$HOME/.cache/meshwatch}/run/clickhouse.env"; set +a
//! cargo test -p meshwatch-store          # uses CLICKHOUSE_URL
//! scripts/clickhouse.sh stop
//! ```
//!
//! Without `CLICKHOUSE_URL` the tests start their own server through `meshwatch-testkit`
//! (from the same installed launcher) and each test uses a database of its own. This server
//! has no native TCP port: use HTTP (curl, the `clickhouse` crate). Do not use its `default`
//! database, which is special in this build.

pub mod clickhouse_store;
pub mod config;
pub mod error;
pub mod migrations;
pub mod queries;
pub mod rows;
pub mod sink;
#[cfg(feature = "sqlite")]
pub mod sqlite;
pub mod writer;

pub use clickhouse_store::ClickHouseStore;
pub use config::{BatchConfig, ClickHouseConfig, TtlConfig};
pub use error::StoreError;
pub use migrations::{MIGRATIONS, Migration, MigrationReport};
pub use rows::{AnomalyScoreRow, ForecastRow, GraphEdgeRow, GraphNodeRow, IncidentRow, Rows};
pub use sink::{Store, StoreFuture};
#[cfg(feature = "sqlite")]
pub use sqlite::SqliteStore;
pub use writer::{Flushed, Writer};

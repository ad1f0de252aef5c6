//! Harness of Meshwatch's system tests (dev-only, `publish = false`): the real components they
//! run against, found or started the same way on a developer machine and in CI.
//!
//! - [`nats`]: a `nats-server` with JetStream — `NATS_URL` when set (as `scripts/test.sh` does),
//!   else one started here from the binary `scripts/install-nats.sh` installs;
//!   [`unique_namespace`] keeps every test's streams and subjects apart.
//! - [`clickhouse`]: a ClickHouse 26.9 (HTTP interface) — `CLICKHOUSE_URL` when set (as
//!   `scripts/test.sh` does), else one server per test process started from the launcher
//!   `scripts/install-clickhouse.sh` installs; [`clickhouse::unique_database`] keeps every
//!   test's tables apart, and [`clickhouse::ClickHouseServer`] is a server a test can stop.
//! - [`snapshots`]: the graph snapshots a namespace's ingest published, read back through an
//!   ordered JetStream consumer and decoded with `meshwatch-proto`.
//! - [`mod@python`]: the interpreter with the OpenTelemetry SDK (`MESHWATCH_PYTHON`, else the
//!   project's cache venv) and a child-process runner with a timeout.
//! - [`ports`]: free loopback ports, for processes whose `:0` ports cannot be read back.
//! - [`results`]: synthetic snapshots published on a namespace and the inference services'
//!   results read back.
//! - [`synthetic`]: small deterministic snapshots (a service chain) for the inference tests.
//! - [`models`]: the committed model artifacts and the ONNX Runtime library (`ORT_DYLIB_PATH`).
//! - [`bins`]: the workspace's service binaries, for tests that run them as processes
//!   (`MESHWATCH_BIN_DIR`, else next to the test executable).
//!
//! A missing prerequisite is an error that says how to install it: tests fail, never skip.

pub mod bins;
pub mod clickhouse;
pub mod models;
pub mod nats;
pub mod ports;
pub mod process;
pub mod python;
pub mod results;
pub mod snapshots;
pub mod synthetic;

pub use nats::{NatsServer, TestNats, delete_streams, unique_namespace};
pub use ports::{free_addr, free_addrs, free_port};
pub use python::{CommandOutput, python, run_client, run_with_timeout};
pub use snapshots::{EdgeTotals, NodeTotals, SnapshotReader, Totals, describe, read_all_snapshots};

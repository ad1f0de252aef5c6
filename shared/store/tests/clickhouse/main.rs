//! The store against a real ClickHouse 26.9: `CLICKHOUSE_URL`, or a server the testkit starts
//! (`scripts/install-clickhouse.sh`). Every test uses a database of its own.

mod fixtures;
mod migrations;
mod roundtrip;
mod writer;

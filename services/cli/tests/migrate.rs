//! `meshwatch migrate` run as a user runs it, against a real ClickHouse 26.9 (`CLICKHOUSE_URL`,
//! else one the testkit starts): applies the schema once, is idempotent, lists what is applied,
//! and fails with a clear message when ClickHouse cannot be reached.

use std::process::{Command, Output};

use anyhow::{Context, Result, ensure};
use meshwatch_testkit::clickhouse;

fn meshwatch(args: &[&str]) -> Result<Output> {
    Command::new(env!("CARGO_BIN_EXE_meshwatch"))
        .args(args)
        .env_remove("CLICKHOUSE_URL")
        .output()
        .context("running meshwatch")
}

fn text(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_apply_once_and_are_listed() -> Result<()> {
    let url = clickhouse::url().await?;
    let database = clickhouse::unique_database("climigrate");
    let first = meshwatch(&["migrate", "--url", &url, "--database", &database])?;
    ensure!(first.status.success(), "{}", text(&first));
    ensure!(
        text(&first).contains("applied [1, 2, 3, 4], already applied []"),
        "{}",
        text(&first)
    );
    let again = meshwatch(&["migrate", "--url", &url, "--database", &database])?;
    ensure!(again.status.success(), "{}", text(&again));
    ensure!(
        text(&again).contains("applied [], already applied [1, 2, 3, 4]"),
        "{}",
        text(&again)
    );
    let status = meshwatch(&[
        "migrate",
        "--url",
        &url,
        "--database",
        &database,
        "--status",
    ])?;
    ensure!(status.status.success(), "{}", text(&status));
    ensure!(
        text(&status).contains(&format!("4 migration(s) applied in {database}")),
        "{}",
        text(&status)
    );
    let tables = clickhouse::post(
        &url,
        &format!("SELECT name FROM system.tables WHERE database = '{database}' ORDER BY name"),
    )
    .await?;
    for table in [
        "anomaly_scores",
        "forecasts",
        "graph_edges",
        "graph_nodes",
        "incidents",
    ] {
        ensure!(tables.contains(table), "{table} missing: {tables}");
    }
    clickhouse::drop_database(&url, &database).await;
    Ok(())
}

#[test]
fn an_unreachable_clickhouse_is_a_clear_error() -> Result<()> {
    let port = meshwatch_testkit::free_port()?;
    let url = format!("http://127.0.0.1:{port}");
    let output = meshwatch(&["migrate", "--url", &url])?;
    ensure!(!output.status.success(), "{}", text(&output));
    ensure!(
        text(&output).contains(&format!("migrating meshwatch at {url}")),
        "{}",
        text(&output)
    );
    Ok(())
}

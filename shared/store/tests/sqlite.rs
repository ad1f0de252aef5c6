//! The embedded sink: the same rows, the same answers as ClickHouse, in one SQLite file.
#![cfg(feature = "sqlite")]

// The ClickHouse tests' rows; their store helpers are unused here.
#[allow(dead_code)]
#[path = "clickhouse/fixtures.rs"]
mod fixtures;

use std::time::Duration;

use fixtures::{T0, WINDOW_MS, incident, sample};
use meshwatch_store::{BatchConfig, SqliteStore, Store, Writer};

#[tokio::test]
async fn rows_round_trip_and_redelivery_does_not_duplicate() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("data/meshwatch.db");
    let store = SqliteStore::open(&path)?;
    assert_eq!(store.kind(), "sqlite");
    let rows = sample("prod");
    store.insert(&rows).await?;
    store.insert(&rows).await?;
    store.insert(&sample("staging")).await?;

    assert_eq!(
        store.count("graph_nodes").await?,
        2 * rows.graph_nodes.len() as u64
    );
    assert_eq!(
        store.count("graph_edges").await?,
        2 * rows.graph_edges.len() as u64
    );
    assert_eq!(
        store.count("anomaly_scores").await?,
        2 * rows.anomaly_scores.len() as u64
    );
    assert_eq!(
        store.count("forecasts").await?,
        2 * rows.forecasts.len() as u64
    );
    assert_eq!(store.count("incidents").await?, 2);
    assert!(store.count("sqlite_master").await.is_err());

    let scores = store
        .service_scores("prod", "db", T0, T0 + 3 * i64::from(WINDOW_MS))
        .await?;
    let expected: Vec<_> = rows
        .anomaly_scores
        .iter()
        .filter(|s| s.service == "db")
        .cloned()
        .collect();
    assert_eq!(scores, expected);

    let forecasts = store.service_forecasts("prod", "db", T0, i64::MAX).await?;
    let mut expected = rows.forecasts.clone();
    expected.sort_by_key(|f| (f.target_time, f.horizon));
    assert_eq!(forecasts, expected);

    // The latest version wins, also when an older one arrives late.
    store
        .insert(&vec![incident("prod", "inc-1", 1, "open")].into())
        .await?;
    let incidents = store.latest_incidents("prod", T0, 10).await?;
    assert_eq!(incidents, vec![rows.incidents[1].clone()]);

    // Reopened: the schema is applied once, the data is still there.
    drop(store);
    let store = SqliteStore::open(&path)?;
    assert_eq!(store.count("incidents").await?, 2);
    Ok(())
}

#[tokio::test]
async fn the_writer_works_in_front_of_the_embedded_sink() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let store = SqliteStore::open(dir.path().join("w.db"))?;
    let mut writer = Writer::new(
        store.clone(),
        BatchConfig {
            max_rows: 10,
            max_bytes: usize::MAX,
            max_delay: Duration::from_secs(60),
        },
    );
    writer.push(sample("prod"), 1);
    assert!(writer.is_full());
    assert_eq!(writer.flush().await?.acks, vec![1]);
    assert_eq!(store.count("graph_nodes").await?, 9);
    Ok(())
}

/// Another SQLite (Python's standard library, an older release than the bundled one) reads
/// the file: the format is plain SQLite, usable with the `sqlite3` shell or any client.
#[test]
fn the_file_is_readable_by_another_sqlite() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("shell.db");
    let runtime = tokio::runtime::Builder::new_current_thread().build()?;
    runtime.block_on(async {
        let store = SqliteStore::open(&path)?;
        store.insert(&sample("prod")).await
    })?;
    let python = std::env::var("MESHWATCH_BOOTSTRAP_PYTHON").unwrap_or_else(|_| "python3".into());
    let output = std::process::Command::new(&python)
        .arg("-c")
        .arg(
            "import sqlite3, sys\n\
             c = sqlite3.connect(sys.argv[1])\n\
             q = \"SELECT incident_id, status, json_extract(root_causes, '$[0].service') FROM incidents\"\n\
             print(*c.execute(q).fetchone(), sep='|')",
        )
        .arg(&path)
        .output()
        .map_err(|e| anyhow::anyhow!("cannot run {python} (Python 3 is a prerequisite): {e}"))?;
    assert!(output.status.success(), "{output:?}");
    assert_eq!(
        String::from_utf8(output.stdout)?.trim(),
        "inc-1|resolved|payments"
    );
    Ok(())
}

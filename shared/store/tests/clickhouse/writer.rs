//! The batching writer against ClickHouse, and ClickHouse going away.

use std::time::Duration;

use meshwatch_store::{
    BatchConfig, ClickHouseConfig, ClickHouseStore, Rows, Store as _, StoreError, Writer,
};
use meshwatch_testkit::clickhouse::{ClickHouseServer, unique_database};
use tokio::time::Instant;

use crate::fixtures::{T0, cleanup, count, node, score, store};

fn batch(max_rows: usize, max_bytes: usize, max_delay: Duration) -> BatchConfig {
    BatchConfig {
        max_rows,
        max_bytes,
        max_delay,
    }
}

/// One window's rows of one service: a node and its score.
fn unit(window: i64) -> Rows {
    Rows {
        graph_nodes: vec![node("prod", window, "checkout")],
        anomaly_scores: vec![score("prod", window, "checkout", 0.5)],
        ..Rows::default()
    }
}

#[tokio::test]
async fn flushes_by_size_and_acks_after_the_insert() -> anyhow::Result<()> {
    let store = store("writersize").await?;
    let mut writer = Writer::new(
        store.clone(),
        batch(6, usize::MAX, Duration::from_secs(3600)),
    );
    let mut acked = Vec::new();
    for window in 0..7 {
        writer.push(unit(window), window);
        if writer.is_full() {
            let flushed = writer.flush().await?;
            // Acked only now; the rows are in ClickHouse.
            let stored = count(&store, "SELECT count() FROM graph_nodes").await?;
            assert_eq!(stored, flushed.acks.len() as u64 + acked.len() as u64);
            acked.extend(flushed.acks);
        }
    }
    // 2 rows per unit: full after units 0-2 and 3-5.
    assert_eq!(acked, vec![0, 1, 2, 3, 4, 5]);
    assert_eq!(writer.pending_units(), 1);
    assert!(!writer.is_full());
    acked.extend(writer.flush().await?.acks);
    assert_eq!(acked, (0..7).collect::<Vec<_>>());
    assert_eq!(
        count(&store, "SELECT count() FROM anomaly_scores FINAL").await?,
        7
    );

    let mut by_bytes = Writer::new(
        store.clone(),
        batch(usize::MAX, 1000, Duration::from_secs(3600)),
    );
    let mut units = 0;
    while !by_bytes.is_full() {
        by_bytes.push(unit(100 + units), units);
        units += 1;
    }
    assert!(units > 1 && by_bytes.pending_bytes() >= 1000);
    assert_eq!(by_bytes.flush().await?.acks.len(), units as usize);
    cleanup(&store).await;
    Ok(())
}

#[tokio::test]
async fn flushes_by_period() -> anyhow::Result<()> {
    let store = store("writerperiod").await?;
    let period = Duration::from_millis(300);
    let mut writer = Writer::new(store.clone(), batch(1000, usize::MAX, period));
    let start = Instant::now();
    writer.push(unit(0), "a");
    assert!(!writer.is_due(start), "not full, not old");
    writer.push(unit(1), "b");
    let deadline = writer.deadline().expect("pending rows have a deadline");
    assert!(
        deadline >= start + period,
        "the oldest unit sets the deadline"
    );
    tokio::time::sleep_until(deadline).await;
    let flushed = writer
        .flush_if_due(Instant::now())
        .await?
        .expect("due after the period");
    assert_eq!(flushed.acks, vec!["a", "b"]);
    assert_eq!(flushed.rows, 4);
    assert!(start.elapsed() >= period);
    assert_eq!(count(&store, "SELECT count() FROM graph_nodes").await?, 2);
    assert_eq!(writer.deadline(), None);
    cleanup(&store).await;
    Ok(())
}

#[tokio::test]
async fn a_closed_port_is_a_retryable_error() -> anyhow::Result<()> {
    let port = meshwatch_testkit::free_port()?;
    let config = ClickHouseConfig {
        url: format!("http://127.0.0.1:{port}"),
        database: unique_database("closed"),
        request_timeout: Duration::from_secs(5),
        ..ClickHouseConfig::default()
    };
    let store = ClickHouseStore::new(&config)?;
    let error = store.insert(&unit(0)).await.expect_err("nothing listens");
    assert!(matches!(error, StoreError::Unavailable { .. }), "{error:?}");
    assert!(error.is_retryable());
    let error = store.migrate().await.expect_err("nothing listens");
    assert!(error.is_retryable(), "{error:?}");
    Ok(())
}

#[tokio::test]
async fn clickhouse_down_keeps_the_batch_until_it_is_back() -> anyhow::Result<()> {
    let mut server = ClickHouseServer::start().await?;
    let config = ClickHouseConfig {
        url: server.url(),
        database: unique_database("down"),
        request_timeout: Duration::from_secs(5),
        ..ClickHouseConfig::default()
    };
    let (store, _) = ClickHouseStore::connect(&config).await?;
    let mut writer = Writer::new(
        store.clone(),
        batch(100, usize::MAX, Duration::from_secs(1)),
    );
    writer.push(unit(0), 0);
    let _ = writer.flush().await?;

    server.stop();
    writer.push(unit(1), 1);
    writer.push(unit(2), 2);
    let error = writer.flush().await.expect_err("server is down");
    assert!(error.is_retryable(), "{error:?}");
    assert_eq!(error.kind(), "unavailable");
    assert_eq!(writer.pending_units(), 2, "nothing dropped, nothing to ack");

    server.restart().await?;
    let flushed = writer.flush().await?;
    assert_eq!(flushed.acks, vec![1, 2]);
    // The data survived the restart, each window once.
    assert_eq!(
        count(&store, "SELECT count() FROM graph_nodes FINAL").await?,
        3
    );
    let scores = store
        .service_scores("prod", "checkout", T0, T0 + 1_000_000)
        .await?;
    assert_eq!(scores.len(), 3);
    cleanup(&store).await;
    Ok(())
}

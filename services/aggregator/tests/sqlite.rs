//! The embedded sink: the same flow into a SQLite file, read back with `SqliteStore`.

mod support;

use std::time::Duration;

use meshwatch_aggregator::SinkKind;
use meshwatch_store::SqliteStore;
use meshwatch_testkit::results::Bus;
use meshwatch_testkit::{TestNats, unique_namespace};
use support::{
    Aggregator, CULPRIT, FAULT, GRAPH, HORIZONS, NODES, SERVICES, WINDOW_MS, config, epoch_ms,
    eventually, publish_windows,
};

/// The body of `GET path` on the admin endpoint (HTTP/1.0, no client library needed).
async fn get(admin: std::net::SocketAddr, path: &str) -> anyhow::Result<String> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut stream = tokio::net::TcpStream::connect(admin).await?;
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: {admin}\r\n\r\n").as_bytes())
        .await?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await?;
    Ok(String::from_utf8_lossy(&response).into_owned())
}

#[test]
fn check_config_prints_the_effective_configuration() -> anyhow::Result<()> {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_meshwatch-aggregator"))
        .args(["--check-config", "--set", "sink.kind=sqlite"])
        .output()?;
    assert!(output.status.success(), "{output:?}");
    let text = String::from_utf8(output.stdout)?;
    assert!(text.contains("kind = \"sqlite\""), "{text}");
    assert!(text.contains("listen = \"0.0.0.0:9467\""), "{text}");
    let refused = std::process::Command::new(env!("CARGO_BIN_EXE_meshwatch-aggregator"))
        .args(["--check-config", "--set", "results.fetch_batch=0"])
        .output()?;
    assert_eq!(refused.status.code(), Some(2), "{refused:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stores_the_flow_in_a_sqlite_file() -> anyhow::Result<()> {
    let nats = TestNats::get().await?;
    let bus = Bus::connect(&nats.url(), &unique_namespace("agg_sqlite")).await?;
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("meshwatch.db");
    let mut config = config(&bus.nats);
    config.sink.kind = SinkKind::Sqlite;
    config.sink.sqlite.path = path.clone();

    let aggregator = Aggregator::start(config).await?;
    assert_eq!(aggregator.running.sink, "sqlite");
    let windows = 40_u64;
    publish_windows(&bus, 0..40).await?;

    let store = SqliteStore::open(&path)?;
    let expected = [
        ("graph_nodes", windows * NODES as u64),
        ("graph_edges", windows * SERVICES as u64),
        ("anomaly_scores", windows * NODES as u64),
        ("forecasts", windows * SERVICES as u64 * u64::from(HORIZONS)),
    ];
    for (table, want) in expected {
        let store = &store;
        eventually(
            &format!("{table} holds {want} rows"),
            Duration::from_secs(60),
            || async move { Ok(store.count(table).await? == want) },
        )
        .await?;
    }
    let metrics = get(aggregator.running.admin, "/metrics").await?;
    for line in [
        "meshwatch_aggregator_rows_written_total{table=\"anomaly_scores\"}",
        "meshwatch_aggregator_messages_total{outcome=\"stored\",worker=\"results\"}",
        "meshwatch_aggregator_incident_changes_total{kind=\"opened\"}",
        "meshwatch_aggregator_threshold_series",
    ] {
        assert!(metrics.contains(line), "{line} missing:\n{metrics}");
    }
    eventually("ready", Duration::from_secs(10), || async {
        Ok(get(aggregator.running.admin, "/readyz")
            .await?
            .contains("ready"))
    })
    .await?;
    let report = aggregator.stop().await;
    assert!(report.is_clean(), "{report:?}");

    let scores = store
        .service_scores(
            GRAPH,
            CULPRIT,
            epoch_ms(),
            epoch_ms() + 40 * i64::from(WINDOW_MS),
        )
        .await?;
    assert_eq!(scores.len(), 40);
    let anomalous: Vec<i64> = scores
        .iter()
        .filter(|s| s.is_anomaly)
        .map(|s| (s.window_start - epoch_ms()) / i64::from(WINDOW_MS))
        .collect();
    assert!(
        FAULT.clone().all(|w| anomalous.contains(&w)),
        "fault windows not all anomalous: {anomalous:?}"
    );

    let incidents = store.latest_incidents(GRAPH, 0, 100).await?;
    let fault_start = epoch_ms() + FAULT.start() * i64::from(WINDOW_MS);
    let fault_end = epoch_ms() + FAULT.end() * i64::from(WINDOW_MS);
    let over_fault: Vec<_> = incidents
        .iter()
        .filter(|i| {
            i.kind == "detected"
                && i.services.iter().any(|s| s == CULPRIT)
                && i.opened_at <= fault_end
                && i.resolved_at.is_none_or(|r| r >= fault_start)
        })
        .collect();
    assert_eq!(over_fault.len(), 1, "{incidents:#?}");
    assert!(
        over_fault[0]
            .root_cause_services
            .iter()
            .take(3)
            .any(|s| s == CULPRIT),
        "{:?}",
        over_fault[0].root_cause_services
    );
    assert!(
        incidents
            .iter()
            .any(|i| i.kind == "predicted" && i.services == [CULPRIT]),
        "{incidents:#?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_undecodable_messages_at_once() -> anyhow::Result<()> {
    use futures::StreamExt as _;
    use meshwatch_bus::MessageKind;
    use meshwatch_bus::dead_letter::HEADER_REASON;

    let nats = TestNats::get().await?;
    let bus = Bus::connect(&nats.url(), &unique_namespace("agg_dlq")).await?;
    let dir = tempfile::tempdir()?;
    let mut config = config(&bus.nats);
    config.sink.kind = SinkKind::Sqlite;
    config.sink.sqlite.path = dir.path().join("meshwatch.db");
    let aggregator = Aggregator::start(config).await?;

    bus.context
        .publish(bus.names.score_subject(GRAPH), "not protobuf \u{ff}".into())
        .await?
        .await?;
    bus.context
        .publish(bus.names.snapshot_subject(GRAPH), vec![0xff_u8; 7].into())
        .await?
        .await?;
    let mut letters = bus.dead_letters().await?;
    let mut subjects = Vec::new();
    for _ in 0..2 {
        let letter = tokio::time::timeout(Duration::from_secs(30), letters.next())
            .await?
            .ok_or_else(|| anyhow::anyhow!("dead letters ended"))??;
        let reason = letter
            .headers
            .as_ref()
            .and_then(|h| h.get(HEADER_REASON))
            .map(|v| v.as_str().to_owned())
            .unwrap_or_default();
        assert!(reason.starts_with("not a valid"), "{reason}");
        subjects.push(letter.subject.to_string());
    }
    subjects.sort();
    assert_eq!(
        subjects,
        vec![
            bus.names.dlq_subject(MessageKind::Score),
            bus.names.dlq_subject(MessageKind::Snapshot),
        ]
    );
    let report = aggregator.stop().await;
    assert!(report.is_clean(), "{report:?}");
    Ok(())
}

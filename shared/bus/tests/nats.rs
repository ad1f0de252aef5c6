//! System tests against a real `nats-server` with JetStream (`NATS_URL`, or one started here
//! by `meshwatch-testkit` from `MESHWATCH_NATS_SERVER` / the cache venv's `nats-server`; without
//! a server binary these tests fail, they never skip). Every test uses its own namespace, so its
//! streams and subjects collide with nothing.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail, ensure};
use async_nats::jetstream::Context;
use async_nats::jetstream::stream::{Config as StreamConfig, StorageType};
use meshwatch_bus::envelope::{HEADER_CONTENT_TYPE, HEADER_MSG_ID, HEADER_SCHEMA};
use meshwatch_bus::{
    BufferConfig, BufferedPublisher, BusError, JetStreamSink, NatsConfig, RefusedReason,
    SnapshotMessage, SnapshotSink, StreamChange,
};
use meshwatch_graph::sketch::Sketch;
use meshwatch_graph::snapshot::{ConnectionType, Edge, GraphSnapshot, IngestStats, Node, NodeKind};
use meshwatch_testkit::{NatsServer, TestNats, unique_namespace};

/// Every test ends within this, or fails.
const TEST_TIMEOUT: Duration = Duration::from_secs(90);

async fn within<F: Future<Output = anyhow::Result<()>>>(test: F) -> anyhow::Result<()> {
    tokio::time::timeout(TEST_TIMEOUT, test)
        .await
        .context("test timed out")?
}

fn config(url: String, test: &str) -> NatsConfig {
    NatsConfig {
        url,
        namespace: Some(unique_namespace(test)),
        connect_timeout: Duration::from_secs(2),
        request_timeout: Duration::from_secs(2),
        ..NatsConfig::default()
    }
}

async fn context(config: &NatsConfig) -> anyhow::Result<Context> {
    let client = meshwatch_bus::connect(config).await?;
    Ok(meshwatch_bus::context(client, config))
}

/// Removes the test's streams from a shared server (best effort).
async fn cleanup(context: &Context, config: &NatsConfig) {
    if let Ok(names) = config.names() {
        for stream in [names.snapshots_stream(), names.results_stream()] {
            let _ = context.delete_stream(stream).await;
        }
    }
}

fn snapshot(graph: &str, window_start_ms: i64) -> GraphSnapshot {
    let mut latency = Sketch::default();
    let mut gap = Sketch::default();
    for v in [1.5, 7.0, 120.0] {
        latency.add(v);
    }
    for v in [-0.4, 0.0, 2.5] {
        gap.add(v);
    }
    let mut node = Node::new("checkout".to_owned(), NodeKind::Service);
    node.requests = 3;
    node.latency = latency.clone();
    let mut edge = Edge::new(
        "frontend".to_owned(),
        "checkout".to_owned(),
        ConnectionType::Direct,
    );
    edge.calls = 3;
    edge.paired_calls = 3;
    edge.client_latency = latency;
    edge.gap = gap;
    GraphSnapshot {
        graph: graph.to_owned(),
        window_start_ms,
        window_ms: 30_000,
        nodes: vec![node],
        edges: vec![edge],
        stats: IngestStats {
            spans: 6,
            paired: 6,
            ..IngestStats::default()
        },
        producer: "ingest-test".to_owned(),
        producer_version: "0.1.0".to_owned(),
    }
}

async fn stream_config(context: &Context, name: &str) -> anyhow::Result<StreamConfig> {
    Ok(context.get_stream(name).await?.cached_info().config.clone())
}

async fn stream_messages(context: &Context, name: &str) -> anyhow::Result<u64> {
    let mut stream = context.get_stream(name).await?;
    Ok(stream.info().await?.state.messages)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ensure_streams_is_idempotent_and_updates_limits() -> anyhow::Result<()> {
    within(async {
        let nats = TestNats::get().await?;
        let mut config = config(nats.url(), "ensure");
        let names = config.names()?;
        let js = context(&config).await?;

        let first = meshwatch_bus::ensure_streams(&js, &config).await?;
        assert_eq!(
            first,
            [
                (names.snapshots_stream(), StreamChange::Created),
                (names.results_stream(), StreamChange::Created)
            ]
        );
        let second = meshwatch_bus::ensure_streams(&js, &config).await?;
        assert!(
            second.iter().all(|(_, c)| *c == StreamChange::Unchanged),
            "{second:?}"
        );

        let snapshots = stream_config(&js, &names.snapshots_stream()).await?;
        assert_eq!(snapshots.subjects, names.snapshots_stream_subjects());
        assert_eq!(snapshots.max_age, Duration::from_secs(24 * 3600));
        assert_eq!(snapshots.duplicate_window, Duration::from_secs(120));
        assert_eq!(snapshots.num_replicas, 1);
        let results = stream_config(&js, &names.results_stream()).await?;
        assert_eq!(results.subjects, names.results_stream_subjects());

        // A changed limit is applied in place; the other stream is left alone.
        config.snapshots_max_age = Duration::from_secs(2 * 3600);
        let third = meshwatch_bus::ensure_streams(&js, &config).await?;
        assert_eq!(third[0].1, StreamChange::Updated);
        assert_eq!(third[1].1, StreamChange::Unchanged);
        let snapshots = stream_config(&js, &names.snapshots_stream()).await?;
        assert_eq!(snapshots.max_age, Duration::from_secs(2 * 3600));

        // A subject an operator added survives; nothing else changes.
        let extra = format!("{}.extra.>", names.namespace().unwrap_or_default());
        let mut with_extra = snapshots.clone();
        with_extra.subjects.push(extra.clone());
        js.update_stream(&with_extra).await?;
        let fourth = meshwatch_bus::ensure_streams(&js, &config).await?;
        assert!(
            fourth.iter().all(|(_, c)| *c == StreamChange::Unchanged),
            "{fourth:?}"
        );
        let snapshots = stream_config(&js, &names.snapshots_stream()).await?;
        assert!(snapshots.subjects.contains(&extra));

        cleanup(&js, &config).await;
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incompatible_existing_stream_is_reported() -> anyhow::Result<()> {
    within(async {
        let nats = TestNats::get().await?;
        let config = config(nats.url(), "incompat");
        let js = context(&config).await?;
        let [mut snapshots, _] = meshwatch_bus::stream_configs(&config)?;
        snapshots.storage = StorageType::Memory;
        js.create_stream(snapshots).await?;
        let err = meshwatch_bus::ensure_streams(&js, &config)
            .await
            .err()
            .context("memory storage must be refused")?;
        assert!(
            matches!(err, BusError::IncompatibleStream { .. }),
            "{err:?}"
        );
        assert!(!err.is_retryable());
        cleanup(&js, &config).await;
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_snapshot_twice_is_stored_once() -> anyhow::Result<()> {
    within(async {
        let nats = TestNats::get().await?;
        let config = config(nats.url(), "dedup");
        let names = config.names()?;
        let js = context(&config).await?;
        meshwatch_bus::ensure_streams(&js, &config).await?;

        let domain = snapshot("prod.eu west", 1_764_000_000_000);
        let message = SnapshotMessage::from_domain(&domain);
        let first = meshwatch_bus::publish_snapshot(&js, &names, &message).await?;
        assert!(!first.duplicate);
        let again = SnapshotMessage::from_domain(&domain);
        let second = meshwatch_bus::publish_snapshot(&js, &names, &again).await?;
        assert!(second.duplicate);
        assert_eq!(second.sequence, first.sequence);
        assert_eq!(stream_messages(&js, &names.snapshots_stream()).await?, 1);

        // What landed in the stream: subject, headers, payload.
        let stream = js.get_stream(names.snapshots_stream()).await?;
        let stored = stream
            .get_raw_message(first.sequence.context("sequence")?)
            .await?;
        assert_eq!(
            stored.subject.as_str(),
            names.snapshot_subject("prod.eu west")
        );
        assert!(stored.subject.ends_with(".snapshots.prod%2Eeu%20west"));
        let header = |name: &str| stored.headers.get(name).map(|v| v.as_str().to_owned());
        // The id names the producer, so other replicas' partial snapshots of the window stay.
        assert_eq!(
            header(HEADER_MSG_ID).as_deref(),
            Some("snapshot:prod%2Eeu%20west:1764000000000:ingest-test")
        );
        assert_eq!(
            header(HEADER_CONTENT_TYPE).as_deref(),
            Some(meshwatch_proto::SNAPSHOT_CONTENT_TYPE)
        );
        assert_eq!(header(HEADER_SCHEMA).as_deref(), Some("meshwatch.v1"));
        assert_eq!(meshwatch_proto::decode_snapshot(&stored.payload)?, domain);

        cleanup(&js, &config).await;
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sink_recreates_a_deleted_stream() -> anyhow::Result<()> {
    within(async {
        let nats = TestNats::get().await?;
        let config = config(nats.url(), "recreate");
        let names = config.names()?;
        let sink = JetStreamSink::connect(&config).await?;
        assert!(sink.is_connected() && sink.streams_ensured());
        sink.context()
            .delete_stream(names.snapshots_stream())
            .await?;
        let outcome = sink
            .publish(&SnapshotMessage::from_domain(&snapshot("g", 0)))
            .await?;
        assert!(!outcome.duplicate);
        assert_eq!(
            stream_messages(sink.context(), &names.snapshots_stream()).await?,
            1
        );
        cleanup(sink.context(), &config).await;
        Ok(())
    })
    .await
}

/// Polls `condition` every 50 ms for up to `limit`.
async fn wait_until(limit: Duration, mut condition: impl FnMut() -> bool) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + limit;
    while !condition() {
        if tokio::time::Instant::now() > deadline {
            bail!("condition not reached within {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buffered_publisher_survives_a_server_restart() -> anyhow::Result<()> {
    within(async {
        // Always a server of our own: this test stops it.
        let mut server = NatsServer::start().await?;
        let config = config(server.url(), "restart");
        let buffer = BufferConfig {
            max_snapshots: 3,
            retry_initial_backoff: Duration::from_millis(50),
            retry_max_backoff: Duration::from_millis(500),
            ..BufferConfig::default()
        };
        let names = config.names()?;
        let sink = JetStreamSink::connect(&config).await?;

        server.stop();
        wait_until(Duration::from_secs(10), || !sink.is_connected()).await?;

        let publisher = BufferedPublisher::spawn(Arc::new(sink.clone()), buffer);
        let windows = [0, 30_000, 60_000];
        for w in windows {
            publisher
                .try_enqueue(SnapshotMessage::from_domain(&snapshot("prod", w)))
                .map_err(|e| anyhow::anyhow!("enqueue {w}: {e}"))?;
        }
        assert!(!publisher.has_room());
        let refused = publisher
            .try_enqueue(SnapshotMessage::from_domain(&snapshot("prod", 90_000)))
            .err()
            .context("a full buffer must refuse")?;
        assert_eq!(refused.reason, RefusedReason::Count);

        tokio::time::sleep(Duration::from_secs(1)).await;
        let stats = publisher.stats();
        ensure!(stats.published == 0 && stats.buffered == 3, "{stats:?}");
        ensure!(stats.retries > 0, "{stats:?}");

        server.restart().await?;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        publisher.flush(deadline).await?;

        let stats = publisher.stats();
        assert_eq!(
            (stats.published, stats.failed, stats.buffered),
            (3, 0, 0),
            "{stats:?}"
        );
        let js = sink.context();
        assert_eq!(stream_messages(js, &names.snapshots_stream()).await?, 3);
        let stream = js.get_stream(names.snapshots_stream()).await?;
        let mut stored = Vec::new();
        for seq in 1..=3 {
            let message = stream.get_raw_message(seq).await?;
            stored.push(meshwatch_proto::decode_snapshot(&message.payload)?.window_start_ms);
        }
        assert_eq!(stored, windows);
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sink_started_before_the_server_buffers_then_delivers() -> anyhow::Result<()> {
    within(async {
        let mut server = NatsServer::reserve()?;
        let config = config(server.url(), "early");
        let buffer = BufferConfig {
            retry_initial_backoff: Duration::from_millis(50),
            retry_max_backoff: Duration::from_millis(500),
            ..BufferConfig::default()
        };
        let names = config.names()?;
        let sink = JetStreamSink::start(&config).await?;
        assert!(!sink.is_connected());
        assert!(!sink.streams_ensured());
        let publisher = BufferedPublisher::spawn(Arc::new(sink.clone()), buffer);
        for w in [0, 30_000] {
            publisher
                .try_enqueue(SnapshotMessage::from_domain(&snapshot("prod", w)))
                .map_err(|e| anyhow::anyhow!("enqueue {w}: {e}"))?;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(publisher.stats().published, 0);

        // A fresh server: no streams until the sink creates them.
        server.restart().await?;
        publisher
            .flush(tokio::time::Instant::now() + Duration::from_secs(30))
            .await?;
        wait_until(Duration::from_secs(10), || sink.streams_ensured()).await?;
        let js = sink.context();
        assert_eq!(stream_messages(js, &names.snapshots_stream()).await?, 2);
        let results = stream_config(js, &names.results_stream()).await?;
        assert_eq!(results.subjects, names.results_stream_subjects());
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_failure_is_clear_and_hides_credentials() -> anyhow::Result<()> {
    within(async {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let config = NatsConfig {
            url: format!("nats://alice:hunter2@127.0.0.1:{port}"),
            connect_timeout: Duration::from_millis(500),
            ..NatsConfig::default()
        };
        let err = meshwatch_bus::connect(&config)
            .await
            .err()
            .context("nothing listens there")?;
        assert!(matches!(err, BusError::Connect { .. }), "{err:?}");
        assert!(err.is_retryable());
        let debug = format!("{err:?}");
        let shown = format!("{:#} {debug}", anyhow::Error::from(err));
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains(&format!("127.0.0.1:{port}")), "{shown}");
        Ok(())
    })
    .await
}

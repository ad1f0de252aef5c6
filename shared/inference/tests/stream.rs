//! The streaming path against a real `nats-server` with JetStream and the committed models:
//! snapshots in, one report per graph and window out with the right ids; a restart rebuilds the
//! history from the stream and scores no window twice and skips none; redeliveries and poison
//! messages.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use meshwatch_bus::MessageKind;
use meshwatch_bus::dead_letter::HEADER_REASON;
use meshwatch_inference::{Detector, Forecaster, InferenceConfig, Role};
use meshwatch_proto::v1;
use meshwatch_testkit::models::artifact;
use meshwatch_testkit::results::{Bus, Published};
use meshwatch_testkit::{TestNats, unique_namespace};
use prost::Message as _;

use support::{Service, config};

const EPOCH: i64 = 1_764_000_000_000;
const WINDOW: u32 = 10_000;

fn streaming<R: Role>(bus: &Bus, model: &str) -> anyhow::Result<InferenceConfig<R>> {
    let mut cfg = config::<R>(&artifact(model))?;
    cfg.grpc.enabled = false;
    cfg.stream.enabled = true;
    cfg.stream.fetch_expires = Duration::from_millis(200);
    cfg.nats = bus.nats.clone();
    Ok(cfg)
}

async fn publish(
    bus: &Bus,
    graph: &str,
    windows: std::ops::Range<i64>,
    producer: &str,
) -> anyhow::Result<()> {
    bus.publish_windows(graph, EPOCH, WINDOW, windows, 4, producer)
        .await
}

async fn results(
    bus: &Bus,
    kind: MessageKind,
    want: usize,
    settle: Duration,
) -> anyhow::Result<Vec<Published>> {
    bus.results(kind, want, Duration::from_secs(60), settle)
        .await
}

fn anomaly_reports(published: &[Published]) -> Vec<v1::AnomalyReport> {
    published
        .iter()
        .map(|p| v1::AnomalyReport::decode(p.payload.clone()).expect("an AnomalyReport"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scores_every_window_once_across_a_restart() -> anyhow::Result<()> {
    let nats = TestNats::get().await?;
    let bus = Bus::connect(&nats.url(), &unique_namespace("detstream")).await?;
    let service = Service::start(streaming::<Detector>(&bus, "detector")?).await?;
    let version = service.running.server.info().version.clone();

    publish(&bus, "shop", 0..8, "a").await?;
    publish(&bus, "cart", 0..8, "a").await?;
    let first = results(&bus, MessageKind::Score, 16, Duration::from_millis(500)).await?;
    assert_eq!(first.len(), 16);
    for (p, r) in first.iter().zip(anomaly_reports(&first)) {
        assert_eq!(
            p.id,
            meshwatch_bus::subjects::msg_id(
                MessageKind::Score,
                &r.graph,
                r.window_start_ms,
                Some(&version)
            )
        );
        assert_eq!(
            p.content_type,
            "application/x-protobuf; proto=meshwatch.v1.AnomalyReport"
        );
        assert_eq!(
            r.model.as_ref().map(|m| m.version.as_str()),
            Some(version.as_str())
        );
        assert_eq!(r.scores.len(), 5, "{r:?}");
    }
    // Window k of a graph saw k + 1 observed windows of history.
    for r in anomaly_reports(&first) {
        let k = (r.window_start_ms - EPOCH) / i64::from(WINDOW);
        assert_eq!(i64::from(r.observed_steps), k + 1, "{} window {k}", r.graph);
    }

    let report = service.stop().await;
    assert!(report.is_clean(), "{report:?}");
    // While it is down: more windows, and a redelivered copy (another producer) of window 3.
    publish(&bus, "shop", 8..12, "a").await?;
    publish(&bus, "shop", 3..4, "b").await?;
    let service = Service::start(streaming::<Detector>(&bus, "detector")?).await?;
    let all = results(&bus, MessageKind::Score, 20, Duration::from_secs(2)).await?;
    let reports = anomaly_reports(&all);
    let mut per_window: BTreeMap<(String, i64), usize> = BTreeMap::new();
    for r in &reports {
        *per_window
            .entry((r.graph.clone(), r.window_start_ms))
            .or_default() += 1;
    }
    assert_eq!(reports.len(), 20, "{per_window:?}");
    assert!(per_window.values().all(|&n| n == 1), "{per_window:?}");
    // After the restart, the history was rebuilt from the stream: window 8 saw 9 windows.
    let after: Vec<&v1::AnomalyReport> = reports[16..].iter().collect();
    let w8 = after
        .iter()
        .find(|r| r.window_start_ms == EPOCH + 8 * i64::from(WINDOW))
        .expect("window 8");
    assert_eq!(w8.observed_steps, 9);
    let w11 = after
        .iter()
        .find(|r| r.window_start_ms == EPOCH + 11 * i64::from(WINDOW))
        .expect("window 11");
    assert_eq!(w11.observed_steps, 12);
    assert!(service.stop().await.is_clean());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_messages_go_to_the_dead_letter_subject() -> anyhow::Result<()> {
    let nats = TestNats::get().await?;
    let bus = Bus::connect(&nats.url(), &unique_namespace("detpoison")).await?;
    let service = Service::start(streaming::<Detector>(&bus, "detector")?).await?;
    let subject = bus.names.snapshot_subject("shop");
    bus.context
        .publish(subject, bytes::Bytes::from_static(b"\xff\xffnot protobuf"))
        .await?
        .await?;
    // A good snapshot after it is still scored.
    publish(&bus, "shop", 0..1, "a").await?;
    let scores = results(&bus, MessageKind::Score, 1, Duration::from_millis(300)).await?;
    assert_eq!(scores.len(), 1);

    let stream = bus.context.get_stream(bus.names.results_stream()).await?;
    let dlq = stream
        .get_last_raw_message_by_subject(&bus.names.dlq_subject(MessageKind::Snapshot))
        .await?;
    let reason = dlq
        .headers
        .get(HEADER_REASON)
        .map(|v| v.as_str().to_owned());
    assert!(
        reason
            .as_deref()
            .is_some_and(|r| r.contains("not a valid GraphSnapshot")),
        "{reason:?}"
    );
    assert_eq!(&dlq.payload[..], b"\xff\xffnot protobuf");
    assert!(service.stop().await.is_clean());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forecasts_are_published_per_window() -> anyhow::Result<()> {
    let nats = TestNats::get().await?;
    let bus = Bus::connect(&nats.url(), &unique_namespace("fcstream")).await?;
    let service = Service::start(streaming::<Forecaster>(&bus, "forecaster")?).await?;
    let horizon = service.running.server.info().horizon.expect("H");
    publish(&bus, "shop", 0..3, "a").await?;
    let published = results(&bus, MessageKind::Forecast, 3, Duration::from_millis(500)).await?;
    assert_eq!(published.len(), 3);
    for p in &published {
        assert!(p.id.starts_with("forecast:shop:"), "{}", p.id);
        assert_eq!(
            p.content_type,
            "application/x-protobuf; proto=meshwatch.v1.ForecastReport"
        );
        let r = v1::ForecastReport::decode(p.payload.clone())?;
        assert_eq!(r.horizon as usize, horizon);
        assert_eq!(r.forecasts.len(), 5);
    }
    assert!(service.stop().await.is_clean());
    Ok(())
}

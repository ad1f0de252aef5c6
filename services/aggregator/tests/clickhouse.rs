//! The aggregator against real NATS and ClickHouse: graph rows, scores with thresholds, an
//! incident whose top-3 root causes hold the faulty service, forecasts and predicted incidents;
//! then a restart mid-stream, after which every window is stored exactly once.

mod support;

use std::time::Duration;

use meshwatch_testkit::clickhouse;
use meshwatch_testkit::results::Bus;
use meshwatch_testkit::{TestNats, unique_namespace};
use support::{
    Aggregator, CULPRIT, FAULT, GRAPH, HORIZONS, NODES, SERVICES, WINDOW_MS, config, epoch_ms,
    eventually, expect_eq, number, publish_windows,
};

/// Expected rows per table after `windows` windows.
fn expected(windows: u64) -> [(&'static str, u64); 4] {
    let services = SERVICES as u64;
    [
        ("graph_nodes", windows * NODES as u64),
        ("graph_edges", windows * services),
        ("anomaly_scores", windows * NODES as u64),
        ("forecasts", windows * services * u64::from(HORIZONS)),
    ]
}

/// Waits until every table holds (with FINAL) the rows of `windows` windows.
async fn wait_for_windows(url: &str, db: &str, windows: u64) -> anyhow::Result<()> {
    for (table, want) in expected(windows) {
        eventually(
            &format!("{table} holds {want} rows"),
            Duration::from_secs(60),
            || async move {
                let n = number(url, &format!("SELECT count() FROM {db}.{table} FINAL")).await?;
                anyhow::ensure!(n == want, "{n} rows");
                Ok(true)
            },
        )
        .await?;
    }
    Ok(())
}

/// Every key is stored once: counts with FINAL equal the distinct keys and the expected rows,
/// and every window has all its nodes.
async fn check_exactly_once(url: &str, db: &str, windows: u64) -> anyhow::Result<()> {
    let keys = [
        ("graph_nodes", "graph, window_start, service"),
        ("graph_edges", "graph, window_start, caller, callee"),
        (
            "anomaly_scores",
            "graph, service, window_start, model_version",
        ),
        (
            "forecasts",
            "graph, service, metric, target_time, horizon, model_version",
        ),
    ];
    for ((table, key), (_, want)) in keys.iter().zip(expected(windows)) {
        let final_count = number(url, &format!("SELECT count() FROM {db}.{table} FINAL")).await?;
        let distinct = number(url, &format!("SELECT uniqExact({key}) FROM {db}.{table}")).await?;
        expect_eq(&format!("{table} FINAL"), final_count, want)?;
        expect_eq(&format!("{table} distinct keys"), distinct, want)?;
    }
    let windows_stored = number(
        url,
        &format!(
            "SELECT count() FROM (SELECT window_start, count() AS n FROM {db}.anomaly_scores FINAL \
             GROUP BY window_start HAVING n = {NODES})"
        ),
    )
    .await?;
    expect_eq("windows with every node scored", windows_stored, windows)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stores_windows_incidents_and_forecasts_once_across_a_restart() -> anyhow::Result<()> {
    let nats = TestNats::get().await?;
    let namespace = unique_namespace("agg_ch");
    let bus = Bus::connect(&nats.url(), &namespace).await?;
    let url = clickhouse::url().await?;
    let db = clickhouse::unique_database("aggregator");
    let mut config = config(&bus.nats);
    config.sink.clickhouse.url = url.clone();
    config.sink.clickhouse.database = db.clone();

    let first = Aggregator::start(config.clone()).await?;
    assert_eq!(first.running.sink, "clickhouse");
    publish_windows(&bus, 0..40).await?;
    wait_for_windows(&url, &db, 40).await?;
    let probe = &first;
    eventually("ready", Duration::from_secs(10), || async move {
        Ok(probe.is_ready())
    })
    .await?;

    // Thresholds: the culprit is anomalous in every fault window.
    let fault_start = epoch_ms() + FAULT.start() * i64::from(WINDOW_MS);
    let fault_end = epoch_ms() + FAULT.end() * i64::from(WINDOW_MS);
    let fault_windows = FAULT.clone().count() as u64;
    let culprit_anomalies = number(
        &url,
        &format!(
            "SELECT count() FROM {db}.anomaly_scores FINAL WHERE service = '{CULPRIT}' \
             AND is_anomaly AND window_start BETWEEN fromUnixTimestamp64Milli({fault_start}) \
             AND fromUnixTimestamp64Milli({fault_end})"
        ),
    )
    .await?;
    expect_eq(
        "culprit anomalous fault windows",
        culprit_anomalies,
        fault_windows,
    )?;
    let anomalies = number(
        &url,
        &format!("SELECT count() FROM {db}.anomaly_scores FINAL WHERE is_anomaly"),
    )
    .await?;
    eprintln!("anomalous scores in 40 windows: {anomalies}");
    // The incident that holds the culprit during the fault has it in its top 3 root causes and
    // resolved afterwards. (SPOT calibrated on a few windows flags a few normal windows too; an
    // incident they opened just before the fault is the one the fault joins.)
    let incidents = clickhouse::post(
        &url,
        &format!(
            "SELECT incident_id, status, arraySlice(root_causes.service, 1, 3) FROM \
             {db}.incidents FINAL WHERE kind = 'detected' AND graph = '{GRAPH}' AND \
             has(services, '{CULPRIT}') AND opened_at <= fromUnixTimestamp64Milli({fault_end}) \
             AND (resolved_at IS NULL OR resolved_at >= fromUnixTimestamp64Milli({fault_start})) \
             FORMAT TSV"
        ),
    )
    .await?;
    let rows: Vec<&str> = incidents.lines().collect();
    assert_eq!(
        rows.len(),
        1,
        "one incident over the fault expected: {incidents}"
    );
    assert!(
        rows[0].contains(&format!("'{CULPRIT}'")),
        "culprit not in the top 3: {incidents}"
    );
    assert!(
        rows[0].contains("\tresolved\t"),
        "not resolved: {incidents}"
    );
    let detected = number(
        &url,
        &format!("SELECT count() FROM {db}.incidents FINAL WHERE kind = 'detected'"),
    )
    .await?;
    eprintln!("detected incidents in 40 windows: {detected}");

    // The culprit's forecasts crossed the SLO: predicted incidents for it only.
    let predicted = clickhouse::post(
        &url,
        &format!(
            "SELECT DISTINCT arrayJoin(services) FROM {db}.incidents FINAL WHERE kind = \
             'predicted' FORMAT TSV"
        ),
    )
    .await?;
    assert_eq!(
        predicted.trim(),
        CULPRIT,
        "predicted incidents: {predicted}"
    );

    // Restart mid-stream: publish while the first aggregator stops, then start a second one.
    // Paced, so that the stop falls in the middle of the stream.
    let publisher = {
        let bus = Bus::connect(&nats.url(), &namespace).await?;
        tokio::spawn(async move {
            for i in 40..70 {
                publish_windows(&bus, i..i + 1).await?;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            anyhow::Ok(())
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let report = first.stop().await;
    assert!(report.is_clean(), "{report:?}");
    let at_stop = number(
        &url,
        &format!("SELECT uniqExact(window_start) FROM {db}.anomaly_scores"),
    )
    .await?;
    eprintln!("windows stored when the first aggregator stopped: {at_stop} of 70");
    publisher.await??;
    let second = Aggregator::start(config).await?;
    publish_windows(&bus, 70..80).await?;
    wait_for_windows(&url, &db, 80).await?;
    check_exactly_once(&url, &db, 80).await?;
    let report = second.stop().await;
    assert!(report.is_clean(), "{report:?}");
    clickhouse::drop_database(&url, &db).await;
    Ok(())
}

/// Messages of `consumer` on `stream` not acknowledged yet (delivered or not).
async fn unacked(bus: &Bus, stream: String, consumer: &str) -> anyhow::Result<u64> {
    let info = support::consumer_info(bus, stream, consumer).await?;
    Ok(info.num_ack_pending as u64 + info.num_pending)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn holds_messages_while_clickhouse_is_down_and_stores_them_once() -> anyhow::Result<()> {
    let nats = TestNats::get().await?;
    let bus = Bus::connect(&nats.url(), &unique_namespace("agg_outage")).await?;
    let mut server = clickhouse::ClickHouseServer::start().await?;
    let url = server.url();
    let db = clickhouse::unique_database("outage");
    let mut config = config(&bus.nats);
    config.sink.clickhouse.url = url.clone();
    config.sink.clickhouse.database = db.clone();
    config.sink.clickhouse.request_timeout = Duration::from_secs(5);

    let aggregator = Aggregator::start(config.clone()).await?;
    publish_windows(&bus, 0..10).await?;
    wait_for_windows(&url, &db, 10).await?;
    // Rows are visible a moment before the INSERT's answer (and the acks): wait for the acks.
    let (bus_ref, results_consumer, snapshots_consumer) =
        (&bus, &config.results.consumer, &config.snapshots.consumer);
    eventually(
        "first windows acked",
        Duration::from_secs(30),
        || async move {
            let results =
                unacked(bus_ref, bus_ref.names.results_stream(), results_consumer).await?;
            let snapshots = unacked(
                bus_ref,
                bus_ref.names.snapshots_stream(),
                snapshots_consumer,
            )
            .await?;
            Ok(results == 0 && snapshots == 0)
        },
    )
    .await?;

    server.stop();
    publish_windows(&bus, 10..20).await?;
    let probe = &aggregator;
    eventually(
        "not ready while clickhouse is down",
        Duration::from_secs(30),
        || async move { Ok(!probe.is_ready()) },
    )
    .await?;
    // Nothing published during the outage is acknowledged, however long it lasts.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let results = unacked(&bus, bus.names.results_stream(), &config.results.consumer).await?;
    let snapshots = unacked(
        &bus,
        bus.names.snapshots_stream(),
        &config.snapshots.consumer,
    )
    .await?;
    expect_eq("unacked results while down", results, 20)?;
    expect_eq("unacked snapshots while down", snapshots, 10)?;

    server.restart().await?;
    wait_for_windows(&url, &db, 20).await?;
    check_exactly_once(&url, &db, 20).await?;
    eventually("ready again", Duration::from_secs(30), || async move {
        Ok(probe.is_ready())
    })
    .await?;
    let results = unacked(&bus, bus.names.results_stream(), &config.results.consumer).await?;
    expect_eq("unacked results after the outage", results, 0)?;
    let report = aggregator.stop().await;
    assert!(report.is_clean(), "{report:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_a_batch_the_sink_refuses() -> anyhow::Result<()> {
    use futures::StreamExt as _;
    use meshwatch_bus::dead_letter::HEADER_REASON;

    let nats = TestNats::get().await?;
    let bus = Bus::connect(&nats.url(), &unique_namespace("agg_refused")).await?;
    let url = clickhouse::url().await?;
    let db = clickhouse::unique_database("refused");
    let mut config = config(&bus.nats);
    config.sink.clickhouse.url = url.clone();
    config.sink.clickhouse.database = db.clone();
    let aggregator = Aggregator::start(config.clone()).await?;
    publish_windows(&bus, 0..3).await?;
    wait_for_windows(&url, &db, 3).await?;

    // A table that is gone is not something a retry fixes.
    clickhouse::post(&url, &format!("DROP TABLE {db}.forecasts SYNC")).await?;
    publish_windows(&bus, 3..4).await?;
    let mut letters = bus.dead_letters().await?;
    let letter = tokio::time::timeout(Duration::from_secs(30), letters.next())
        .await?
        .ok_or_else(|| anyhow::anyhow!("dead letters ended"))??;
    let reason = letter
        .headers
        .as_ref()
        .and_then(|h| h.get(HEADER_REASON))
        .map(|v| v.as_str().to_owned())
        .unwrap_or_default();
    assert!(reason.starts_with("the sink refused the batch"), "{reason}");
    let (bus_ref, consumer) = (&bus, &config.results.consumer);
    eventually("refused batch terminated", Duration::from_secs(30), || async move {
        Ok(unacked(bus_ref, bus_ref.names.results_stream(), consumer).await? == 0)
    })
    .await?;
    let report = aggregator.stop().await;
    assert!(report.is_clean(), "{report:?}");
    clickhouse::drop_database(&url, &db).await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shuts_down_in_time_while_clickhouse_is_down_and_loses_nothing() -> anyhow::Result<()> {
    let nats = TestNats::get().await?;
    let bus = Bus::connect(&nats.url(), &unique_namespace("agg_down_stop")).await?;
    let mut server = clickhouse::ClickHouseServer::start().await?;
    let url = server.url();
    let db = clickhouse::unique_database("downstop");
    let mut config = config(&bus.nats);
    config.sink.clickhouse.url = url.clone();
    config.sink.clickhouse.database = db.clone();
    config.sink.clickhouse.request_timeout = Duration::from_secs(1);
    config.shutdown.grace = Duration::from_secs(3);

    let aggregator = Aggregator::start(config.clone()).await?;
    publish_windows(&bus, 0..5).await?;
    wait_for_windows(&url, &db, 5).await?;
    server.stop();
    publish_windows(&bus, 5..10).await?;
    let probe = &aggregator;
    eventually("not ready", Duration::from_secs(30), || async move {
        Ok(!probe.is_ready())
    })
    .await?;
    // The flush keeps failing: the drain gives the held messages back within the grace.
    let report = aggregator.stop_within(config.shutdown.grace).await;
    assert!(report.is_clean(), "{report:?}");
    assert!(report.drain_time < config.shutdown.grace, "{report:?}");
    let results = unacked(&bus, bus.names.results_stream(), &config.results.consumer).await?;
    assert!(
        results >= 10,
        "{results} results unacked, expected the outage's 10 or more"
    );

    server.restart().await?;
    let second = Aggregator::start(config.clone()).await?;
    wait_for_windows(&url, &db, 10).await?;
    check_exactly_once(&url, &db, 10).await?;
    let report = second.stop().await;
    assert!(report.is_clean(), "{report:?}");
    Ok(())
}

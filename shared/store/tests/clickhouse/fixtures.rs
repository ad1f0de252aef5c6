//! Rows and stores for the tests.

use meshwatch_store::{
    AnomalyScoreRow, ClickHouseConfig, ClickHouseStore, ForecastRow, GraphEdgeRow, GraphNodeRow,
    IncidentRow, Rows,
};
use meshwatch_testkit::clickhouse::{drop_database, unique_database, url};

/// 2026-11-27T10:00:00Z, a window start.
pub const T0: i64 = 1_795_773_600_000;
/// Window length.
pub const WINDOW_MS: u32 = 10_000;

/// A configuration for a fresh database of `test` on the tests' server.
pub async fn config(test: &str) -> anyhow::Result<ClickHouseConfig> {
    Ok(ClickHouseConfig {
        url: url().await?,
        database: unique_database(test),
        ..ClickHouseConfig::default()
    })
}

/// A migrated store on a fresh database.
pub async fn store(test: &str) -> anyhow::Result<ClickHouseStore> {
    let (store, report) = ClickHouseStore::connect(&config(test).await?).await?;
    assert_eq!(report.applied, vec![1, 2, 3, 4]);
    Ok(store)
}

/// Drops the store's database (best effort).
pub async fn cleanup(store: &ClickHouseStore) {
    drop_database(&store.config().url, store.database()).await;
}

/// Runs a query that returns one number.
pub async fn count(store: &ClickHouseStore, sql: &str) -> anyhow::Result<u64> {
    Ok(store.client().query(sql).fetch_one::<u64>().await?)
}

pub fn node(graph: &str, window: i64, service: &str) -> GraphNodeRow {
    GraphNodeRow {
        graph: graph.to_owned(),
        window_start: T0 + window * i64::from(WINDOW_MS),
        window_ms: WINDOW_MS,
        service: service.to_owned(),
        kind: "service".to_owned(),
        requests: 100 + window as u64,
        errors: 2,
        latency_p50_ms: 12.5,
        latency_p95_ms: 40.0,
        latency_p99_ms: 80.25,
        latency_mean_ms: 15.0,
        out_calls: 50,
        out_errors: 1,
        out_latency_p99_ms: 30.0,
        in_gap_p99_ms: 1.5,
        spans: 250,
        cpu_utilization: if service == "db" { None } else { Some(0.5) },
        memory_bytes: Some(1.5e9),
    }
}

pub fn edge(graph: &str, window: i64, caller: &str, callee: &str) -> GraphEdgeRow {
    GraphEdgeRow {
        graph: graph.to_owned(),
        window_start: T0 + window * i64::from(WINDOW_MS),
        window_ms: WINDOW_MS,
        caller: caller.to_owned(),
        callee: callee.to_owned(),
        connection_type: "http".to_owned(),
        calls: 40,
        errors: 1,
        paired_calls: 39,
        client_p50_ms: 10.0,
        client_p99_ms: 50.0,
        server_p99_ms: 45.0,
        gap_p99_ms: 5.0,
    }
}

pub fn score(graph: &str, window: i64, service: &str, score: f32) -> AnomalyScoreRow {
    AnomalyScoreRow {
        graph: graph.to_owned(),
        service: service.to_owned(),
        window_start: T0 + window * i64::from(WINDOW_MS),
        window_ms: WINDOW_MS,
        model_version: "gat-1.0".to_owned(),
        score,
        threshold: 0.8,
        is_anomaly: score > 0.8,
        present: true,
        contributions: vec![
            ("latency_p99".to_owned(), 0.7),
            ("error_ratio".to_owned(), 0.2),
            ("cpu".to_owned(), -0.05),
        ],
    }
}

pub fn incident(graph: &str, id: &str, version: u64, status: &str) -> IncidentRow {
    IncidentRow {
        graph: graph.to_owned(),
        incident_id: id.to_owned(),
        kind: "detected".to_owned(),
        status: status.to_owned(),
        opened_at: T0,
        updated_at: T0 + version as i64 * i64::from(WINDOW_MS),
        resolved_at: (status == "resolved").then_some(T0 + 60_000),
        severity: 0.5 + version as f32 / 10.0,
        services: vec!["checkout".to_owned(), "payments".to_owned()],
        root_cause_services: vec!["payments".to_owned(), "checkout".to_owned()],
        root_cause_scores: vec![0.72, 0.21],
        root_cause_evidence: vec![
            r#"{"features":["latency_p99"],"path":["checkout","payments"]}"#.to_owned(),
            "{}".to_owned(),
        ],
        version,
    }
}

pub fn forecast(graph: &str, service: &str, issued: i64, horizon: u16) -> ForecastRow {
    let issued_at = T0 + issued * i64::from(WINDOW_MS);
    ForecastRow {
        graph: graph.to_owned(),
        service: service.to_owned(),
        metric: "latency_p99_ms".to_owned(),
        issued_at,
        target_time: issued_at + i64::from(horizon) * i64::from(WINDOW_MS),
        horizon,
        value: 80.0 + f32::from(horizon),
        lower: 60.0,
        upper: 100.0 + f32::from(horizon),
        model_version: "tcn-1.0".to_owned(),
    }
}

/// A little of everything for `graph`: 3 windows of a 3-node chain with its 2 edges and
/// scores, forecasts for 2 horizons from 2 windows, and one incident in 2 versions.
pub fn sample(graph: &str) -> Rows {
    let services = ["frontend", "checkout", "db"];
    let mut rows = Rows::default();
    for window in 0..3 {
        for service in services {
            rows.graph_nodes.push(node(graph, window, service));
            let value = if service == "db" && window == 2 {
                0.95
            } else {
                0.1
            };
            rows.anomaly_scores
                .push(score(graph, window, service, value));
        }
        rows.graph_edges
            .push(edge(graph, window, "frontend", "checkout"));
        rows.graph_edges.push(edge(graph, window, "checkout", "db"));
    }
    for issued in 0..2 {
        for horizon in [1, 2] {
            rows.forecasts.push(forecast(graph, "db", issued, horizon));
        }
    }
    rows.incidents.push(incident(graph, "inc-1", 1, "open"));
    rows.incidents.push(incident(graph, "inc-1", 2, "resolved"));
    rows
}

//! The documented queries: SQL files under `queries/`, with ClickHouse query parameters
//! (`{graph:String}`), so the same text runs here, in `clickhouse-client --param_graph=...` and
//! over HTTP (`?param_graph=...`). Each reads with `FINAL`, so a row re-delivered and written
//! twice is seen once, and an incident in its latest version.

use crate::rows::{AnomalyScoreRow, ForecastRow, GraphEdgeRow, GraphNodeRow, IncidentRow};
use crate::{ClickHouseStore, StoreError};

/// The latest incidents of a graph. Parameters: `graph`, `since_ms`, `limit`.
pub const LATEST_INCIDENTS: &str = include_str!("../queries/latest_incidents.sql");
/// A service's anomaly scores over time. Parameters: `graph`, `service`, `from_ms`, `to_ms`.
pub const SERVICE_SCORES: &str = include_str!("../queries/service_scores.sql");
/// A service's forecasts over time. Parameters: `graph`, `service`, `from_ms`, `to_ms`.
pub const SERVICE_FORECASTS: &str = include_str!("../queries/service_forecasts.sql");
/// The graph at a time, nodes. Parameters: `graph`, `at_ms`.
pub const GRAPH_NODES_AT: &str = include_str!("../queries/graph_nodes_at.sql");
/// The graph at a time, edges. Parameters: `graph`, `at_ms`.
pub const GRAPH_EDGES_AT: &str = include_str!("../queries/graph_edges_at.sql");
/// The graph at a time, scores (anomalies first). Parameters: `graph`, `at_ms`.
pub const WINDOW_SCORES: &str = include_str!("../queries/window_scores.sql");

/// Every documented query by name (the file name without `.sql`).
pub const ALL: &[(&str, &str)] = &[
    ("latest_incidents", LATEST_INCIDENTS),
    ("service_scores", SERVICE_SCORES),
    ("service_forecasts", SERVICE_FORECASTS),
    ("graph_nodes_at", GRAPH_NODES_AT),
    ("graph_edges_at", GRAPH_EDGES_AT),
    ("window_scores", WINDOW_SCORES),
];

impl ClickHouseStore {
    /// [`LATEST_INCIDENTS`]: the newest state of each incident of `graph` opened at or after
    /// `since_ms`, most recently updated first, at most `limit`.
    pub async fn latest_incidents(
        &self,
        graph: &str,
        since_ms: i64,
        limit: u32,
    ) -> Result<Vec<IncidentRow>, StoreError> {
        self.timed(
            self.client()
                .query_raw(LATEST_INCIDENTS)
                .param("graph", graph)
                .param("since_ms", since_ms)
                .param("limit", limit)
                .fetch_all(),
        )
        .await
    }

    /// [`SERVICE_SCORES`]: the scores of `service` for windows starting in `[from_ms, to_ms)`.
    pub async fn service_scores(
        &self,
        graph: &str,
        service: &str,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<AnomalyScoreRow>, StoreError> {
        self.timed(
            self.client()
                .query_raw(SERVICE_SCORES)
                .param("graph", graph)
                .param("service", service)
                .param("from_ms", from_ms)
                .param("to_ms", to_ms)
                .fetch_all(),
        )
        .await
    }

    /// [`SERVICE_FORECASTS`]: the forecasts of `service` whose target window starts in
    /// `[from_ms, to_ms)`.
    pub async fn service_forecasts(
        &self,
        graph: &str,
        service: &str,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<ForecastRow>, StoreError> {
        self.timed(
            self.client()
                .query_raw(SERVICE_FORECASTS)
                .param("graph", graph)
                .param("service", service)
                .param("from_ms", from_ms)
                .param("to_ms", to_ms)
                .fetch_all(),
        )
        .await
    }

    /// [`GRAPH_NODES_AT`]: the nodes of the window of `graph` starting at `at_ms`.
    pub async fn graph_nodes_at(
        &self,
        graph: &str,
        at_ms: i64,
    ) -> Result<Vec<GraphNodeRow>, StoreError> {
        self.timed(
            self.client()
                .query_raw(GRAPH_NODES_AT)
                .param("graph", graph)
                .param("at_ms", at_ms)
                .fetch_all(),
        )
        .await
    }

    /// [`GRAPH_EDGES_AT`]: the edges of the window of `graph` starting at `at_ms`.
    pub async fn graph_edges_at(
        &self,
        graph: &str,
        at_ms: i64,
    ) -> Result<Vec<GraphEdgeRow>, StoreError> {
        self.timed(
            self.client()
                .query_raw(GRAPH_EDGES_AT)
                .param("graph", graph)
                .param("at_ms", at_ms)
                .fetch_all(),
        )
        .await
    }

    /// [`WINDOW_SCORES`]: every node's score in the window of `graph` starting at `at_ms`.
    pub async fn window_scores(
        &self,
        graph: &str,
        at_ms: i64,
    ) -> Result<Vec<AnomalyScoreRow>, StoreError> {
        self.timed(
            self.client()
                .query_raw(WINDOW_SCORES)
                .param("graph", graph)
                .param("at_ms", at_ms)
                .fetch_all(),
        )
        .await
    }
}

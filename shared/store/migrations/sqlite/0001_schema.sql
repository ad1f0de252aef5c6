-- The embedded sink's schema (SQLite): the same tables and columns as the ClickHouse schema
-- (migrations/000N_*.sql), with the dedup keys as PRIMARY KEYs and upserts instead of
-- ReplacingMergeTree, so a re-delivered row replaces its copy at once (no FINAL needed).
-- Times are INTEGER Unix ms. Map, Array and Nested columns are JSON text:
--   anomaly_scores.contributions  [["latency_p99", 0.7], ...]   (ordered pairs)
--   incidents.services            ["checkout", "payments"]
--   incidents.root_causes         [{"service": "payments", "score": 0.72, "evidence": "{...}"}, ...]
-- Query them with SQLite's JSON functions (json_each, ->>).

CREATE TABLE IF NOT EXISTS graph_nodes (
    graph TEXT NOT NULL,
    window_start INTEGER NOT NULL,
    window_ms INTEGER NOT NULL,
    service TEXT NOT NULL,
    kind TEXT NOT NULL,
    requests INTEGER NOT NULL,
    errors INTEGER NOT NULL,
    latency_p50_ms REAL NOT NULL,
    latency_p95_ms REAL NOT NULL,
    latency_p99_ms REAL NOT NULL,
    latency_mean_ms REAL NOT NULL,
    out_calls INTEGER NOT NULL,
    out_errors INTEGER NOT NULL,
    out_latency_p99_ms REAL NOT NULL,
    in_gap_p99_ms REAL NOT NULL,
    spans INTEGER NOT NULL,
    cpu_utilization REAL,
    memory_bytes REAL,
    inserted_at INTEGER NOT NULL DEFAULT (CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)),
    PRIMARY KEY (graph, window_start, service)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS graph_edges (
    graph TEXT NOT NULL,
    window_start INTEGER NOT NULL,
    window_ms INTEGER NOT NULL,
    caller TEXT NOT NULL,
    callee TEXT NOT NULL,
    connection_type TEXT NOT NULL,
    calls INTEGER NOT NULL,
    errors INTEGER NOT NULL,
    paired_calls INTEGER NOT NULL,
    client_p50_ms REAL NOT NULL,
    client_p99_ms REAL NOT NULL,
    server_p99_ms REAL NOT NULL,
    gap_p99_ms REAL NOT NULL,
    inserted_at INTEGER NOT NULL DEFAULT (CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)),
    PRIMARY KEY (graph, window_start, caller, callee)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS anomaly_scores (
    graph TEXT NOT NULL,
    service TEXT NOT NULL,
    window_start INTEGER NOT NULL,
    window_ms INTEGER NOT NULL,
    model_version TEXT NOT NULL,
    score REAL NOT NULL,
    threshold REAL NOT NULL,
    is_anomaly INTEGER NOT NULL,
    present INTEGER NOT NULL,
    contributions TEXT NOT NULL,
    inserted_at INTEGER NOT NULL DEFAULT (CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)),
    PRIMARY KEY (graph, service, window_start, model_version)
) WITHOUT ROWID;

CREATE INDEX IF NOT EXISTS anomaly_scores_by_window ON anomaly_scores (graph, window_start);

CREATE TABLE IF NOT EXISTS incidents (
    graph TEXT NOT NULL,
    incident_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    status TEXT NOT NULL,
    opened_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    resolved_at INTEGER,
    severity REAL NOT NULL,
    services TEXT NOT NULL,
    root_causes TEXT NOT NULL,
    version INTEGER NOT NULL,
    inserted_at INTEGER NOT NULL DEFAULT (CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)),
    PRIMARY KEY (graph, opened_at, incident_id)
) WITHOUT ROWID;

CREATE INDEX IF NOT EXISTS incidents_by_update ON incidents (graph, updated_at);

CREATE TABLE IF NOT EXISTS forecasts (
    graph TEXT NOT NULL,
    service TEXT NOT NULL,
    metric TEXT NOT NULL,
    issued_at INTEGER NOT NULL,
    target_time INTEGER NOT NULL,
    horizon INTEGER NOT NULL,
    value REAL NOT NULL,
    lower REAL NOT NULL,
    upper REAL NOT NULL,
    model_version TEXT NOT NULL,
    inserted_at INTEGER NOT NULL DEFAULT (CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)),
    PRIMARY KEY (graph, service, metric, target_time, horizon, model_version)
) WITHOUT ROWID;

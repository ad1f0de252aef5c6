-- The service graph per window: one row per node and one per edge of each snapshot.
--
-- Key = ORDER BY: (graph, window_start, service) and (graph, window_start, caller, callee), so
-- "the graph at a time" reads one contiguous range, and a re-delivered snapshot replaces its
-- own rows (ReplacingMergeTree; read with FINAL). Partitioned by day of the window, which is
-- also the TTL column (set from the configuration after the migrations), so old days are
-- dropped as whole parts (ttl_only_drop_parts).
--
-- Codecs: times sorted within a key prefix -> DoubleDelta; counters -> T64; latencies of
-- different services side by side -> plain ZSTD (Gorilla pays for series, not for these rows).

CREATE TABLE IF NOT EXISTS graph_nodes
(
    graph               LowCardinality(String),
    window_start        DateTime64(3, 'UTC') CODEC(DoubleDelta, ZSTD(1)),
    window_ms           UInt32 CODEC(T64, ZSTD(1)),
    service             LowCardinality(String),
    kind                LowCardinality(String),
    requests            UInt64 CODEC(T64, ZSTD(1)),
    errors              UInt64 CODEC(T64, ZSTD(1)),
    latency_p50_ms      Float64 CODEC(ZSTD(1)),
    latency_p95_ms      Float64 CODEC(ZSTD(1)),
    latency_p99_ms      Float64 CODEC(ZSTD(1)),
    latency_mean_ms     Float64 CODEC(ZSTD(1)),
    out_calls           UInt64 CODEC(T64, ZSTD(1)),
    out_errors          UInt64 CODEC(T64, ZSTD(1)),
    out_latency_p99_ms  Float64 CODEC(ZSTD(1)),
    in_gap_p99_ms       Float64 CODEC(ZSTD(1)),
    spans               UInt64 CODEC(T64, ZSTD(1)),
    cpu_utilization     Nullable(Float64) CODEC(ZSTD(1)),
    memory_bytes        Nullable(Float64) CODEC(ZSTD(1)),
    inserted_at         DateTime64(3, 'UTC') DEFAULT now64(3) CODEC(DoubleDelta, ZSTD(1))
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMMDD(window_start)
ORDER BY (graph, window_start, service)
SETTINGS ttl_only_drop_parts = 1;

CREATE TABLE IF NOT EXISTS graph_edges
(
    graph               LowCardinality(String),
    window_start        DateTime64(3, 'UTC') CODEC(DoubleDelta, ZSTD(1)),
    window_ms           UInt32 CODEC(T64, ZSTD(1)),
    caller              LowCardinality(String),
    callee              LowCardinality(String),
    connection_type     LowCardinality(String),
    calls               UInt64 CODEC(T64, ZSTD(1)),
    errors              UInt64 CODEC(T64, ZSTD(1)),
    paired_calls        UInt64 CODEC(T64, ZSTD(1)),
    client_p50_ms       Float64 CODEC(ZSTD(1)),
    client_p99_ms       Float64 CODEC(ZSTD(1)),
    server_p99_ms       Float64 CODEC(ZSTD(1)),
    gap_p99_ms          Float64 CODEC(ZSTD(1)),
    inserted_at         DateTime64(3, 'UTC') DEFAULT now64(3) CODEC(DoubleDelta, ZSTD(1))
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMMDD(window_start)
ORDER BY (graph, window_start, caller, callee)
SETTINGS ttl_only_drop_parts = 1;

-- Detector output: one row per node per window per model version.
--
-- Key = ORDER BY (graph, service, window_start, model_version): "a service's scores over time"
-- reads one contiguous range, and a re-delivered report replaces its own rows
-- (ReplacingMergeTree; read with FINAL). Two model versions scoring the same window (a shadow
-- model) are two rows. Scores of one service over time sit side by side -> Gorilla pays.
-- `contributions` keeps the top feature contributions in the detector's order (a Map is an
-- array of pairs): `contributions['latency_p99']` reads one.

CREATE TABLE IF NOT EXISTS anomaly_scores
(
    graph               LowCardinality(String),
    service             LowCardinality(String),
    window_start        DateTime64(3, 'UTC') CODEC(DoubleDelta, ZSTD(1)),
    window_ms           UInt32 CODEC(T64, ZSTD(1)),
    model_version       LowCardinality(String),
    score               Float32 CODEC(Gorilla, ZSTD(1)),
    threshold           Float32 CODEC(Gorilla, ZSTD(1)),
    is_anomaly          Bool,
    present             Bool,
    contributions       Map(LowCardinality(String), Float32),
    inserted_at         DateTime64(3, 'UTC') DEFAULT now64(3) CODEC(DoubleDelta, ZSTD(1))
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMMDD(window_start)
ORDER BY (graph, service, window_start, model_version)
SETTINGS ttl_only_drop_parts = 1;

-- Forecaster output: one row per (service, metric, horizon) of each report. `issued_at` is the
-- start of the last window the forecast saw; `target_time` the start of the forecast window
-- (issued_at + horizon windows), so (target_time, horizon) identifies the issuing report.
--
-- Key = ORDER BY (graph, service, metric, target_time, horizon, model_version): "a service's
-- forecasts over time" reads one contiguous range per metric, and a re-delivered report
-- replaces its own rows (ReplacingMergeTree; read with FINAL). Partitioned by day of
-- `issued_at` (the TTL column).

CREATE TABLE IF NOT EXISTS forecasts
(
    graph               LowCardinality(String),
    service             LowCardinality(String),
    metric              LowCardinality(String),
    issued_at           DateTime64(3, 'UTC') CODEC(DoubleDelta, ZSTD(1)),
    target_time         DateTime64(3, 'UTC') CODEC(DoubleDelta, ZSTD(1)),
    horizon             UInt16,
    value               Float32 CODEC(Gorilla, ZSTD(1)),
    lower               Float32 CODEC(Gorilla, ZSTD(1)),
    upper               Float32 CODEC(Gorilla, ZSTD(1)),
    model_version       LowCardinality(String),
    inserted_at         DateTime64(3, 'UTC') DEFAULT now64(3) CODEC(DoubleDelta, ZSTD(1))
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMMDD(issued_at)
ORDER BY (graph, service, metric, target_time, horizon, model_version)
SETTINGS ttl_only_drop_parts = 1;

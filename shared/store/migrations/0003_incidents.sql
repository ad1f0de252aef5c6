-- Incidents: every change of an incident is a new row with a higher `version`;
-- ReplacingMergeTree(version) keeps the latest one per (graph, opened_at, incident_id), so read
-- with FINAL (or argMax(..., version) grouped by incident_id). `opened_at` never changes for
-- an incident id (it is part of the key and picks the partition).
--
-- Key = ORDER BY (graph, opened_at, incident_id): "the latest incidents of a graph" is a range
-- read of the graph's newest days. `kind`: detected | predicted (a forecast crossing an SLO);
-- `status`: open | resolved. `root_causes` are ranked, best first (a Nested column: the arrays
-- `root_causes.service`, `root_causes.score`, `root_causes.evidence` of equal length;
-- `ARRAY JOIN root_causes` gives one row per candidate); `evidence` is JSON written by the
-- analysis (top features, propagation path).

CREATE TABLE IF NOT EXISTS incidents
(
    graph               LowCardinality(String),
    incident_id         String,
    kind                LowCardinality(String),
    status              LowCardinality(String),
    opened_at           DateTime64(3, 'UTC'),
    updated_at          DateTime64(3, 'UTC'),
    resolved_at         Nullable(DateTime64(3, 'UTC')),
    severity            Float32,
    services            Array(LowCardinality(String)),
    root_causes         Nested(service LowCardinality(String), score Float64, evidence String),
    version             UInt64,
    inserted_at         DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMMDD(opened_at)
ORDER BY (graph, opened_at, incident_id)
SETTINGS ttl_only_drop_parts = 1;

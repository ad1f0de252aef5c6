#!/usr/bin/env python3
"""Generate the Grafana dashboards of helm/meshwatch/dashboards/*.json (the one source).

    python3 deploy/dashboards/generate.py          # rewrite the JSON files
    python3 deploy/dashboards/generate.py --check  # exit 1 when a committed file differs

ClickHouse panels use the grafana-clickhouse-datasource plugin (v4) with raw SQL against the
tables of shared/store/migrations/*.sql (read with FINAL, as docs/store.md requires); the
ingest-health dashboard reads the services' Prometheus metrics. Data sources are referenced by
the UIDs ${DS_CLICKHOUSE} / ${DS_PROMETHEUS}, which the chart replaces with
dashboards.clickhouseDatasourceUid / prometheusDatasourceUid (a Grafana import asks for them).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parents[2] / "helm" / "meshwatch" / "dashboards"
CH = {"type": "grafana-clickhouse-datasource", "uid": "${DS_CLICKHOUSE}"}
PROM = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
# Plugin v4 query formats.
FORMAT_TIMESERIES = 0
FORMAT_TABLE = 1


def ch_target(sql: str, ref: str = "A", fmt: int = FORMAT_TABLE) -> dict:
    return {
        "datasource": CH,
        "editorType": "sql",
        "format": fmt,
        "queryType": "timeseries" if fmt == FORMAT_TIMESERIES else "table",
        "rawSql": " ".join(sql.split()),
        "refId": ref,
    }


def prom_target(expr: str, legend: str, ref: str = "A") -> dict:
    return {"datasource": PROM, "expr": expr, "legendFormat": legend, "refId": ref}


class Board:
    def __init__(self, uid: str, title: str, description: str, tags: list[str]):
        self.uid, self.title, self.description, self.tags = uid, title, description, tags
        self.panels: list[dict] = []
        self.variables: list[dict] = []
        self.y = 0

    def panel(
        self,
        kind: str,
        title: str,
        targets: list[dict],
        w: int = 24,
        h: int = 8,
        description: str = "",
        ds: dict = CH,
        **extra,
    ) -> None:
        x = sum(p["gridPos"]["w"] for p in self.panels if p["gridPos"]["y"] == self.y)
        if x + w > 24:
            self.y += max(p["gridPos"]["h"] for p in self.panels if p["gridPos"]["y"] == self.y)
            x = 0
        panel = {
            "id": len(self.panels) + 1,
            "type": kind,
            "title": title,
            "description": description,
            "datasource": ds,
            "gridPos": {"x": x, "y": self.y, "w": w, "h": h},
            "targets": targets,
            "fieldConfig": {"defaults": extra.pop("defaults", {}), "overrides": extra.pop("overrides", [])},
            "options": extra.pop("options", {}),
        }
        panel.update(extra)
        self.panels.append(panel)

    def to_json(self) -> dict:
        return {
            "__inputs": [],
            "__requires": [
                {"type": "grafana", "id": "grafana", "name": "Grafana", "version": "10.4.0"},
                {"type": "datasource", "id": "grafana-clickhouse-datasource", "name": "ClickHouse", "version": "4.0.0"},
                {"type": "datasource", "id": "prometheus", "name": "Prometheus", "version": "1.0.0"},
            ],
            "uid": self.uid,
            "title": self.title,
            "description": self.description,
            "tags": ["meshwatch", *self.tags],
            "timezone": "utc",
            "editable": True,
            "graphTooltip": 1,
            "refresh": "30s",
            "schemaVersion": 39,
            "version": 1,
            "time": {"from": "now-6h", "to": "now"},
            "templating": {"list": self.variables},
            "annotations": {"list": []},
            "links": [{"title": "Meshwatch", "type": "dashboards", "tags": ["meshwatch"], "asDropdown": True}],
            "panels": self.panels,
        }


def database_var() -> dict:
    return {"name": "database", "label": "Database", "type": "constant", "query": "meshwatch", "hide": 2}


def ch_var(name: str, label: str, sql: str) -> dict:
    return {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": CH,
        "query": " ".join(sql.split()),
        "definition": " ".join(sql.split()),
        "refresh": 2,
        "sort": 1,
        "includeAll": False,
        "multi": False,
    }


def custom_var(name: str, label: str, values: list[str]) -> dict:
    return {
        "name": name,
        "label": label,
        "type": "custom",
        "query": ",".join(values),
        "current": {"text": values[0], "value": values[0]},
        "options": [{"text": v, "value": v, "selected": i == 0} for i, v in enumerate(values)],
    }


GRAPH_VAR = ch_var("graph", "Graph", "SELECT DISTINCT graph FROM ${database}.graph_nodes ORDER BY graph")
SERVICE_VAR = ch_var(
    "service",
    "Service",
    "SELECT DISTINCT service FROM ${database}.anomaly_scores WHERE graph = '${graph}' ORDER BY service",
)


def incidents() -> Board:
    b = Board(
        "meshwatch-incidents",
        "Meshwatch / Incidents and root causes",
        "Incidents the aggregator opened (detected) or predicted from forecasts, with ranked root causes.",
        ["incidents"],
    )
    b.variables = [database_var(), GRAPH_VAR]
    where = "graph = '${graph}' AND $__timeFilter(opened_at)"
    b.panel(
        "stat",
        "Open incidents",
        [
            ch_target(
                "SELECT count() AS open FROM ${database}.incidents FINAL WHERE graph = '${graph}' AND status = 'open'"
            )
        ],
        w=6,
        h=5,
        defaults={
            "thresholds": {
                "mode": "absolute",
                "steps": [{"color": "green", "value": None}, {"color": "red", "value": 1}],
            }
        },
    )
    b.panel(
        "stat",
        "Incidents opened in range",
        [
            ch_target(
                f"SELECT kind, count() AS incidents FROM ${{database}}.incidents FINAL WHERE {where} GROUP "
                "BY kind ORDER BY kind"
            )
        ],
        w=6,
        h=5,
    )
    b.panel(
        "stat",
        "Peak severity in range",
        [ch_target(f"SELECT max(severity) AS severity FROM ${{database}}.incidents FINAL WHERE {where}")],
        w=6,
        h=5,
        defaults={"decimals": 2},
    )
    b.panel(
        "stat",
        "Median time to resolve",
        [
            ch_target(
                f"SELECT quantile(0.5)(dateDiff('second', opened_at, resolved_at)) AS seconds "
                f"FROM ${{database}}.incidents FINAL WHERE {where} AND status = 'resolved' AND resolved_at IS NOT NULL"
            )
        ],
        w=6,
        h=5,
        defaults={"unit": "s"},
    )
    b.panel(
        "timeseries",
        "Incidents opened",
        [
            ch_target(
                "SELECT toStartOfInterval(opened_at, INTERVAL $__interval_s second) AS time, kind, count() "
                "AS incidents "
                f"FROM ${{database}}.incidents FINAL WHERE {where} GROUP BY time, kind ORDER BY time",
                fmt=FORMAT_TIMESERIES,
            )
        ],
        w=12,
        h=8,
        defaults={"custom": {"drawStyle": "bars"}},
    )
    b.panel(
        "barchart",
        "Top root causes (rank 1)",
        [
            ch_target(
                f"SELECT root_causes.service[1] AS service, count() AS incidents FROM ${{database}}.incidents FINAL "
                f"WHERE {where} AND length(root_causes.service) > 0 GROUP BY service ORDER BY incidents DESC LIMIT 10"
            )
        ],
        w=12,
        h=8,
        options={"orientation": "horizontal"},
    )
    b.panel(
        "table",
        "Incidents",
        [
            ch_target(
                f"SELECT opened_at, updated_at, resolved_at, kind, status, round(severity, 2) AS severity, "
                f"arrayStringConcat(services, ', ') AS services, "
                "arrayStringConcat(arraySlice(root_causes.service, 1, 3), ', ') AS top_root_causes, "
                "incident_id, version "
                f"FROM ${{database}}.incidents FINAL WHERE {where} ORDER BY updated_at DESC LIMIT 500"
            )
        ],
        h=10,
        description="The latest version of each incident (FINAL keeps the highest `version`).",
    )
    b.panel(
        "table",
        "Ranked root causes",
        [
            ch_target(
                "SELECT opened_at, incident_id, rank, rc.service AS candidate, round(rc.score, 4) AS "
                "score, rc.evidence AS evidence "
                f"FROM ${{database}}.incidents FINAL ARRAY JOIN root_causes AS rc, "
                "arrayEnumerate(root_causes.service) AS rank "
                f"WHERE {where} ORDER BY opened_at DESC, incident_id, rank LIMIT 1000"
            )
        ],
        h=12,
        description="One row per root-cause candidate, best first; evidence is the analysis' JSON.",
    )
    return b


def scores() -> Board:
    b = Board(
        "meshwatch-anomaly-scores",
        "Meshwatch / Service anomaly scores",
        "The detector's score of one service per window against its adaptive (SPOT) threshold.",
        ["detector"],
    )
    b.variables = [database_var(), GRAPH_VAR, SERVICE_VAR]
    svc = "graph = '${graph}' AND service = '${service}' AND $__timeFilter(window_start)"
    b.panel(
        "timeseries",
        "Score vs threshold: ${service}",
        [
            ch_target(
                f"SELECT window_start AS time, model_version, score, threshold FROM ${{database}}.anomaly_scores FINAL "
                f"WHERE {svc} ORDER BY time",
                fmt=FORMAT_TIMESERIES,
            )
        ],
        h=10,
        overrides=[
            {
                "matcher": {"id": "byRegexp", "options": ".*threshold.*"},
                "properties": [
                    {"id": "custom.lineStyle", "value": {"fill": "dash", "dash": [10, 10]}},
                    {"id": "color", "value": {"mode": "fixed", "fixedColor": "red"}},
                ],
            }
        ],
    )
    b.panel(
        "timeseries",
        "Anomalous windows",
        [
            ch_target(
                "SELECT window_start AS time, toUInt8(is_anomaly) AS anomalous FROM "
                f"${{database}}.anomaly_scores FINAL "
                f"WHERE {svc} ORDER BY time",
                fmt=FORMAT_TIMESERIES,
            )
        ],
        w=12,
        h=6,
        defaults={"custom": {"drawStyle": "bars"}, "max": 1},
    )
    b.panel(
        "timeseries",
        "Traffic: ${service}",
        [
            ch_target(
                f"SELECT window_start AS time, requests / (window_ms / 1000.0) AS requests_per_s, "
                f"if(requests = 0, 0, errors / requests) AS error_ratio, latency_p99_ms "
                f"FROM ${{database}}.graph_nodes FINAL WHERE {svc} ORDER BY time",
                fmt=FORMAT_TIMESERIES,
            )
        ],
        w=12,
        h=6,
    )
    b.panel(
        "table",
        "Top feature contributions of anomalous windows",
        [
            ch_target(
                f"SELECT window_start, round(score, 4) AS score, round(threshold, 4) AS threshold, "
                f"arrayStringConcat(arrayMap((k, v) -> concat(k, '=', toString(round(v, 3))), "
                f"mapKeys(contributions), mapValues(contributions)), ', ') AS contributions, model_version "
                f"FROM ${{database}}.anomaly_scores FINAL WHERE {svc} AND is_anomaly ORDER BY window_start "
                "DESC LIMIT 200"
            )
        ],
        h=8,
    )
    b.panel(
        "table",
        "Most anomalous services of the graph",
        [
            ch_target(
                "SELECT service, countIf(is_anomaly) AS anomalous_windows, "
                "round(max(score / nullIf(threshold, 0)), 3) AS peak_score_over_threshold, count() AS windows "
                "FROM ${database}.anomaly_scores FINAL WHERE graph = '${graph}' AND $__timeFilter(window_start) "
                "GROUP BY service ORDER BY anomalous_windows DESC, peak_score_over_threshold DESC LIMIT 25"
            )
        ],
        h=8,
    )
    return b


def forecasts() -> Board:
    b = Board(
        "meshwatch-forecasts",
        "Meshwatch / Forecasts vs actuals",
        "The forecaster's value and 10-90 % interval for one service, metric and horizon, beside what happened.",
        ["forecaster"],
    )
    b.variables = [
        database_var(),
        GRAPH_VAR,
        SERVICE_VAR,
        custom_var("metric", "Metric", ["request_rate", "latency_p99_ms", "error_ratio", "latency_p90_ms"]),
        custom_var("horizon", "Horizon (windows ahead)", [str(h) for h in range(1, 13)]),
    ]
    fc = (
        "graph = '${graph}' AND service = '${service}' AND metric = '${metric}' AND horizon = ${horizon} "
        "AND $__timeFilter(target_time)"
    )
    actual = (
        "SELECT window_start AS time, multiIf("
        "'${metric}' = 'request_rate', requests / (window_ms / 1000.0), "
        "'${metric}' = 'latency_p99_ms', latency_p99_ms, "
        "'${metric}' = 'error_ratio', if(requests = 0, 0, errors / requests), "
        "NULL) AS actual FROM ${database}.graph_nodes FINAL "
        "WHERE graph = '${graph}' AND service = '${service}' AND $__timeFilter(window_start) ORDER BY time"
    )
    b.panel(
        "timeseries",
        "${metric} of ${service}: forecast ${horizon} window(s) ahead vs actual",
        [
            ch_target(
                f"SELECT target_time AS time, value AS forecast, lower, upper FROM ${{database}}.forecasts FINAL "
                f"WHERE {fc} ORDER BY time",
                "A",
                FORMAT_TIMESERIES,
            ),
            ch_target(actual, "B", FORMAT_TIMESERIES),
        ],
        h=12,
        description="Shaded: the model's 10 % and 90 % quantiles. graph_nodes keeps p50/p95/p99 latencies, so "
        "latency_p90_ms has no actual series.",
        overrides=[
            {
                "matcher": {"id": "byName", "options": "lower"},
                "properties": [{"id": "custom.lineWidth", "value": 0}, {"id": "custom.fillBelowTo", "value": "upper"}],
            },
            {
                "matcher": {"id": "byName", "options": "upper"},
                "properties": [{"id": "custom.lineWidth", "value": 0}, {"id": "custom.fillOpacity", "value": 20}],
            },
            {
                "matcher": {"id": "byName", "options": "actual"},
                "properties": [{"id": "color", "value": {"mode": "fixed", "fixedColor": "orange"}}],
            },
        ],
    )
    b.panel(
        "table",
        "Forecast error by horizon (request_rate, latency_p99_ms, error_ratio)",
        [
            ch_target(
                "SELECT f.metric, f.horizon, count() AS points, "
                "round(avg(abs(f.value - multiIf(f.metric = 'request_rate', n.requests / (n.window_ms / 1000.0), "
                "f.metric = 'latency_p99_ms', n.latency_p99_ms, if(n.requests = 0, 0, n.errors / "
                "n.requests)))), 4) AS mae, "
                "round(avg(multiIf(f.metric = 'request_rate', n.requests / (n.window_ms / 1000.0), "
                "f.metric = 'latency_p99_ms', n.latency_p99_ms, if(n.requests = 0, 0, n.errors / n.requests)) "
                "BETWEEN f.lower AND f.upper), 3) AS interval_coverage "
                "FROM (SELECT * FROM ${database}.forecasts FINAL WHERE graph = '${graph}' AND service = '${service}' "
                "AND metric IN ('request_rate', 'latency_p99_ms', 'error_ratio') AND $__timeFilter(target_time)) AS f "
                "INNER JOIN (SELECT * FROM ${database}.graph_nodes FINAL WHERE graph = '${graph}' AND "
                "service = '${service}' "
                "AND $__timeFilter(window_start)) AS n ON n.window_start = f.target_time "
                "GROUP BY f.metric, f.horizon ORDER BY f.metric, f.horizon"
            )
        ],
        h=10,
        description="Mean absolute error and the share of actuals inside the 10-90 % interval (0.8 expected).",
    )
    b.panel(
        "table",
        "Predicted incidents (forecast over an SLO)",
        [
            ch_target(
                "SELECT opened_at, updated_at, status, round(severity, 2) AS severity, "
                "arrayStringConcat(services, ', ') AS services, "
                "incident_id FROM ${database}.incidents FINAL WHERE graph = '${graph}' AND kind = 'predicted' "
                "AND $__timeFilter(opened_at) ORDER BY updated_at DESC LIMIT 200"
            )
        ],
        h=8,
    )
    return b


def ingest_health() -> Board:
    b = Board(
        "meshwatch-ingest-health",
        "Meshwatch / Pipeline health",
        "Prometheus metrics of the ingest, the inference services and the aggregator.",
        ["ingest", "prometheus"],
    )
    b.variables = [
        {
            "name": "namespace",
            "label": "Namespace",
            "type": "query",
            "datasource": PROM,
            "query": {"query": "label_values(meshwatch_build_info, namespace)", "refId": "ns"},
            "definition": "label_values(meshwatch_build_info, namespace)",
            "refresh": 2,
            "sort": 1,
        }
    ]
    ns = 'namespace="$namespace"'
    r = "[$__rate_interval]"

    def p(title: str, exprs: list[tuple[str, str]], w: int = 12, unit: str = "short", description: str = "") -> None:
        b.panel(
            "timeseries",
            title,
            [prom_target(e, legend, chr(ord("A") + i)) for i, (e, legend) in enumerate(exprs)],
            w=w,
            ds=PROM,
            defaults={"unit": unit},
            description=description,
        )

    p(
        "Spans received by outcome",
        [(f"sum by (outcome) (rate(meshwatch_ingest_spans_total{{{ns}}}{r}))", "{{outcome}}")],
        unit="ops",
    )
    p(
        "OTLP requests by protocol and result",
        [(f"sum by (protocol, result) (rate(meshwatch_ingest_requests_total{{{ns}}}{r}))", "{{protocol}} {{result}}")],
        unit="reqps",
        description="`overloaded` means UNAVAILABLE/503 answers: scale the ingest or NATS.",
    )
    p(
        "Request duration p99",
        [
            (
                "histogram_quantile(0.99, sum by (le, protocol) "
                f"(rate(meshwatch_ingest_request_duration_seconds_bucket{{{ns}}}{r})))",
                "{{protocol}}",
            )
        ],
        unit="s",
    )
    p(
        "Rejected spans by reason",
        [(f"sum by (reason) (rate(meshwatch_ingest_rejected_spans_total{{{ns}}}{r}))", "{{reason}}")],
        unit="ops",
    )
    p(
        "Span outcomes at window close",
        [(f"sum by (outcome) (rate(meshwatch_ingest_span_outcomes_total{{{ns}}}{r}))", "{{outcome}}")],
        unit="ops",
        description="Many `unpaired` spans across replicas: route spans by trace id "
        "(Collector loadbalancing exporter).",
    )
    p(
        "Backpressure",
        [
            (f"max by (pod) (meshwatch_ingest_queue_depth{{{ns}}})", "queue {{pod}}"),
            (f"max by (pod) (meshwatch_ingest_held_snapshots{{{ns}}})", "held snapshots {{pod}}"),
        ],
    )
    p(
        "Aggregation state",
        [
            (f"sum by (pod) (meshwatch_ingest_pending_spans{{{ns}}})", "pending spans {{pod}}"),
            (f"sum by (pod) (meshwatch_ingest_open_windows{{{ns}}})", "open windows {{pod}}"),
        ],
    )
    p(
        "Snapshots closed",
        [(f"sum by (result) (rate(meshwatch_ingest_snapshots_total{{{ns}}}{r}))", "{{result}}")],
        unit="ops",
    )
    p(
        "Inference: stream windows by outcome",
        [(f"sum by (outcome) (rate(meshwatch_inference_stream_windows_total{{{ns}}}{r}))", "{{outcome}}")],
        unit="ops",
    )
    p(
        "Inference: model latency p99",
        [
            (
                "histogram_quantile(0.99, sum by (le, model, provider) "
                f"(rate(meshwatch_model_inference_seconds_bucket{{{ns}}}{r})))",
                "{{model}} {{provider}}",
            )
        ],
        unit="s",
    )
    p(
        "Aggregator: rows written by table",
        [(f"sum by (table) (rate(meshwatch_aggregator_rows_written_total{{{ns}}}{r}))", "{{table}}")],
        unit="rowsps",
    )
    p(
        "Aggregator: flush errors and dead letters",
        [
            (
                f"sum by (worker, kind) (rate(meshwatch_aggregator_flush_errors_total{{{ns}}}{r}))",
                "flush error {{worker}} {{kind}}",
            ),
            (
                f'sum by (worker) (rate(meshwatch_aggregator_messages_total{{{ns},outcome="dead_letter"}}{r}))',
                "dead letter {{worker}}",
            ),
        ],
        unit="ops",
    )
    return b


BOARDS = {"incidents": incidents, "anomaly-scores": scores, "forecasts": forecasts, "pipeline-health": ingest_health}


def render() -> dict[str, str]:
    return {f"{name}.json": json.dumps(make().to_json(), indent=2) + "\n" for name, make in BOARDS.items()}


def main() -> int:
    check = "--check" in sys.argv[1:]
    stale = []
    for name, text in render().items():
        path = OUT / name
        if check:
            if not path.exists() or path.read_text() != text:
                stale.append(str(path))
        else:
            OUT.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    if stale:
        print("out of date (run deploy/dashboards/generate.py): " + ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The Grafana dashboards (helm/meshwatch/dashboards/*.json): generated from
deploy/dashboards/generate.py, well-formed, their SQL run against the real ClickHouse schema
(shared/store/migrations/*.sql) when CLICKHOUSE_URL is set, and their PromQL naming metrics the
services really export."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

import pytest

from conftest import CHART_DIR, REPO

DASHBOARDS = sorted((CHART_DIR / "dashboards").glob("*.json"))
MIGRATIONS = sorted((REPO / "shared" / "store" / "migrations").glob("*.sql"))


def load(path: Path) -> dict:
    return json.loads(path.read_text())


def targets(board: dict, ds_type: str):
    for panel in board["panels"]:
        for t in panel["targets"]:
            if t["datasource"]["type"] == ds_type:
                yield panel["title"], t
    for var in board["templating"]["list"]:
        if var.get("datasource", {}).get("type") == ds_type:
            q = var["query"]
            yield f"variable {var['name']}", {"rawSql": q} if isinstance(q, str) else {"expr": q["query"]}


def test_generated_files_are_current():
    result = subprocess.run(
        [sys.executable, str(REPO / "deploy" / "dashboards" / "generate.py"), "--check"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


def test_dashboards_are_well_formed():
    assert {p.stem for p in DASHBOARDS} == {"incidents", "anomaly-scores", "forecasts", "pipeline-health"}
    uids = set()
    for path in DASHBOARDS:
        board = load(path)
        assert board["uid"] not in uids
        uids.add(board["uid"])
        ids = [p["id"] for p in board["panels"]]
        assert len(ids) == len(set(ids)), path.name
        for p in board["panels"]:
            g = p["gridPos"]
            assert 0 <= g["x"] and g["x"] + g["w"] <= 24, (path.name, p["title"])
            assert p["targets"], (path.name, p["title"])
            for t in p["targets"]:
                assert t["datasource"]["uid"] in ("${DS_CLICKHOUSE}", "${DS_PROMETHEUS}")
                if t["datasource"]["type"] == "grafana-clickhouse-datasource":
                    assert t["editorType"] == "sql" and t["rawSql"]


def substitute(sql: str, database: str, metric: str = "request_rate") -> str:
    far = "toDateTime64('2000-01-01 00:00:00', 3, 'UTC')", "toDateTime64('2100-01-01 00:00:00', 3, 'UTC')"
    sql = re.sub(r"\$__timeFilter\((\w+)\)", lambda m: f"({m[1]} >= {far[0]} AND {m[1]} <= {far[1]})", sql)
    for name, value in {
        "database": database,
        "graph": "shop",
        "service": "cartservice",
        "metric": metric,
        "horizon": "1",
    }.items():
        sql = sql.replace("${" + name + "}", value)
    sql = sql.replace("$__interval_s", "60")
    assert "$" not in sql, f"unsubstituted macro in: {sql}"
    return sql


class ClickHouse:
    def __init__(self, url: str):
        self.url = url.rstrip("/")

    def query(self, sql: str, database: str | None = None) -> str:
        params = {"database": database} if database else {}
        req = urllib.request.Request(f"{self.url}/?{urllib.parse.urlencode(params)}", data=sql.encode(), method="POST")
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.read().decode()
        except urllib.error.HTTPError as e:
            raise AssertionError(f"ClickHouse refused:\n{sql}\n{e.read().decode()}") from None


@pytest.fixture(scope="module")
def clickhouse():
    url = os.environ.get("CLICKHOUSE_URL")
    assert url, "CLICKHOUSE_URL not set (scripts/test-deploy.sh starts one)"
    ch = ClickHouse(url)
    db = f"meshwatch_deploy_{uuid.uuid4().hex[:12]}"
    ch.query(f"CREATE DATABASE {db}")
    try:
        for path in MIGRATIONS:
            text = "\n".join(line for line in path.read_text().splitlines() if not line.lstrip().startswith("--"))
            for stmt in text.split(";"):
                if stmt.strip():
                    ch.query(stmt, db)
        now = "toDateTime64('2026-01-05 10:00:00', 3, 'UTC')"
        ch.query(
            "INSERT INTO graph_nodes (graph, window_start, window_ms, service, kind, requests, errors, "
            "latency_p99_ms) "
            f"VALUES ('shop', {now}, 10000, 'cartservice', 'service', 200, 4, 12.5)",
            db,
        )
        ch.query(
            f"INSERT INTO anomaly_scores (graph, service, window_start, window_ms, model_version, score, threshold, "
            f"is_anomaly, present, contributions) VALUES ('shop', 'cartservice', {now}, 10000, "
            "'detector:v1', 3.2, 2.0, "
            f"true, true, map('latency_p99', 1.5))",
            db,
        )
        ch.query(
            f"INSERT INTO incidents (graph, incident_id, kind, status, opened_at, updated_at, severity, services, "
            f"`root_causes.service`, `root_causes.score`, `root_causes.evidence`, version) VALUES ('shop', 'i1', "
            f"'detected', 'open', {now}, {now}, 2.5, ['cartservice', 'frontend'], ['cartservice', 'frontend'], "
            f"[0.9, 0.1], ['{{}}', '{{}}'], 1)",
            db,
        )
        ch.query(
            f"INSERT INTO forecasts (graph, service, metric, issued_at, target_time, horizon, value, lower, upper, "
            f"model_version) VALUES ('shop', 'cartservice', 'request_rate', {now} - INTERVAL 10 SECOND, {now}, 1, "
            f"19.0, 15.0, 24.0, 'forecaster:v1')",
            db,
        )
        yield ch, db
    finally:
        ch.query(f"DROP DATABASE IF EXISTS {db}")


def clickhouse_queries():
    for path in DASHBOARDS:
        for title, t in targets(load(path), "grafana-clickhouse-datasource"):
            yield pytest.param(t["rawSql"], id=f"{path.stem}: {title}")


@pytest.mark.parametrize("sql", list(clickhouse_queries()))
def test_sql_runs_against_the_schema(clickhouse, sql):
    ch, db = clickhouse
    metrics = (
        ["request_rate", "latency_p99_ms", "error_ratio", "latency_p90_ms"] if "${metric}" in sql else ["request_rate"]
    )
    for metric in metrics:
        ch.query(substitute(sql, db, metric) + " FORMAT JSON")


def test_sql_returns_the_inserted_rows(clickhouse):
    """The queries above can fail and do read data: the incidents table panel finds the incident."""
    ch, db = clickhouse
    (sql,) = [
        t["rawSql"]
        for title, t in targets(load(CHART_DIR / "dashboards" / "incidents.json"), "grafana-clickhouse-datasource")
        if title == "Ranked root causes"
    ]
    rows = json.loads(ch.query(substitute(sql, db) + " FORMAT JSON"))["data"]
    assert [(r["candidate"], int(r["rank"])) for r in rows] == [("cartservice", 1), ("frontend", 2)]
    with pytest.raises(AssertionError, match="ClickHouse refused"):
        ch.query(substitute(sql.replace("rc.score", "rc.scor"), db))


def test_promql_names_exported_metrics():
    sources = "\n".join(p.read_text() for d in ("shared", "services") for p in (REPO / d).rglob("*.rs"))
    exported = set(re.findall(r'"(meshwatch_[a-z0-9_]+)"', sources))
    assert exported, "no metric names found in the Rust sources"
    used = set()
    for path in DASHBOARDS:
        for _, t in targets(load(path), "prometheus"):
            used |= set(re.findall(r"\bmeshwatch_[a-z0-9_]+", t["expr"]))
    assert used
    missing = sorted(m for m in used if re.sub(r"_(bucket|sum|count)$", "", m) not in exported)
    assert not missing, f"metrics no service exports: {missing}"

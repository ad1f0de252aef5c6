"""Shared fixtures of the deployment checks: rendering the chart offline with the Helm SDK
(helm-python-sdk, Helm v4) and validating objects with kubernetes-validate's offline schemas.

Environment (scripts/test-deploy.sh sets them):
  MESHWATCH_KUBE_VERSION   Kubernetes version to validate against (default 1.33.0)
  MESHWATCH_BIN_DIR        a directory with the meshwatch-* binaries: the rendered config files
                           are checked with each service's --check-config
  CLICKHOUSE_URL           a ClickHouse 26.9 HTTP interface: the dashboards' SQL runs against
                           the real schema there (scripts/clickhouse.sh)
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

import helm_python
import kubernetes_validate
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CHART_DIR = REPO / "helm" / "meshwatch"
CI_VALUES = sorted((CHART_DIR / "ci").glob("*-values.yaml"))
KUBE_VERSION = os.environ.get("MESHWATCH_KUBE_VERSION", "1.33.0")
RELEASE = "mw"
NAMESPACE = "observability"
COMPONENTS = ("ingest", "detector", "forecaster", "aggregator", "simulator")

# Custom resources have no schema in kubernetes-validate; each is checked by a test of its own.
CRD_KINDS = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
    ("clickhouse.altinity.com/v1", "ClickHouseInstallation"),
}


@functools.cache
def chart() -> helm_python.Chart:
    return helm_python.Chart.load(str(CHART_DIR))


def load_values(path: Path) -> dict[str, Any]:
    return helm_python.values_from_yaml(path.read_text())


def render(values: dict[str, Any] | None = None) -> dict[str, str]:
    """Template path -> rendered text, as `helm template` would render an install."""
    return chart().render(values or {}, name=RELEASE, namespace=NAMESPACE, is_install=True)


def objects(rendered: dict[str, str]) -> list[dict[str, Any]]:
    out = []
    for path, text in sorted(rendered.items()):
        if path.endswith(".txt"):
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                doc.setdefault("__template__", path)
                out.append(doc)
    return out


def strip(obj: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if k != "__template__"}


def validate(obj: dict[str, Any]) -> None:
    """Strict validation (unknown fields are errors) against KUBE_VERSION; custom resources
    must be among CRD_KINDS."""
    key = (obj.get("apiVersion"), obj.get("kind"))
    if key in CRD_KINDS:
        return
    kubernetes_validate.validate(strip(obj), KUBE_VERSION, strict=True)


def find(objs: list[dict[str, Any]], kind: str, name: str | None = None) -> list[dict[str, Any]]:
    return [o for o in objs if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]


def component(obj: dict[str, Any]) -> str | None:
    return obj["metadata"].get("labels", {}).get("app.kubernetes.io/component")


@pytest.fixture(scope="session", params=CI_VALUES, ids=lambda p: p.stem)
def ci_case(request) -> tuple[str, dict[str, Any], list[dict[str, Any]]]:
    values = load_values(request.param)
    return request.param.stem, values, objects(render(values))

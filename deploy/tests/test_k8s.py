"""k8s/: every Kustomize overlay built with `kubectl kustomize` and validated like the chart
(strict, against MESHWATCH_KUBE_VERSION), the properties of the Meshwatch pods, and the numbered
examples (the Collector's routing config, the ClickHouse installation, the NATS cluster)."""

from __future__ import annotations

import shutil
import subprocess
import tomllib
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from conftest import REPO, validate

K8S = REPO / "k8s"
OVERLAYS = sorted(p.name for p in (K8S / "overlays").iterdir() if (p / "kustomization.yaml").exists())
EXAMPLES = sorted((K8S / "examples").glob("*.yaml"))
KUBECTL = shutil.which("kubectl")


def build(path: Path) -> list[dict]:
    assert KUBECTL, "kubectl (with kustomize) is needed for these checks"
    out = subprocess.run([KUBECTL, "kustomize", str(path)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return [d for d in yaml.safe_load_all(out.stdout) if d]


@pytest.fixture(scope="module", params=["base", *OVERLAYS])
def built(request):
    path = K8S / "base" if request.param == "base" else K8S / "overlays" / request.param
    return request.param, build(path)


def meshwatch_deployments(objs):
    return {
        o["metadata"]["name"]: o
        for o in objs
        if o["kind"] == "Deployment" and o["metadata"]["labels"].get("app.kubernetes.io/name") == "meshwatch"
    }


def test_overlays_exist():
    assert set(OVERLAYS) == {"dev", "production", "gpu"}


def test_valid_kubernetes(built):
    name, objs = built
    failures = []
    for o in objs:
        try:
            validate(o)
        except (kubernetes_validate.ValidationError, kubernetes_validate.SchemaNotFoundError) as e:
            failures.append(f"{name}: {o['kind']}/{o['metadata']['name']}: {e}")
    assert not failures, "\n".join(failures)


def test_meshwatch_pods(built):
    name, objs = built
    deps = meshwatch_deployments(objs)
    assert set(deps) == {f"meshwatch-{c}" for c in ("ingest", "detector", "forecaster", "aggregator")}
    configmaps = {o["metadata"]["name"]: o for o in objs if o["kind"] == "ConfigMap"}
    for dname, d in deps.items():
        spec = d["spec"]["template"]["spec"]
        assert spec["enableServiceLinks"] is False, dname
        assert (
            spec["terminationGracePeriodSeconds"]
            > 25 + spec["containers"][0]["lifecycle"]["preStop"]["sleep"]["seconds"]
        )
        assert spec["securityContext"]["runAsNonRoot"] is True
        (c,) = spec["containers"]
        assert c["securityContext"]["readOnlyRootFilesystem"] is True
        assert c["securityContext"]["capabilities"]["drop"] == ["ALL"]
        assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert "memory" in c["resources"]["limits"]
        # the generated ConfigMap (hash-suffixed) is the one mounted, and it parses
        (vol,) = [v for v in spec["volumes"] if v["name"] == "config"]
        cfg = tomllib.loads(configmaps[vol["configMap"]["name"]]["data"]["config.toml"])
        assert cfg["shutdown"]["grace"] == "25s"
        if dname == "meshwatch-ingest":
            assert cfg["graph"]["window"] == "10s"
        env = {e["name"]: e for e in c.get("env", [])}
        if name in ("production", "gpu"):
            assert env["MESHWATCH_NATS__STREAM_REPLICAS"]["value"] == "3"
            assert d["spec"]["replicas"] == (
                1
                if dname in ("meshwatch-aggregator", "meshwatch-ingest")
                else 2
                if name == "gpu" and dname in ("meshwatch-detector", "meshwatch-forecaster")
                else 3
            )
        if name == "gpu" and dname in ("meshwatch-detector", "meshwatch-forecaster"):
            assert c["image"].endswith("-cuda")
            assert c["resources"]["limits"]["nvidia.com/gpu"] == 1
            assert env["MESHWATCH_MODEL__EXECUTION_PROVIDER"]["value"] == "cuda"
            assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in spec["tolerations"]
        else:
            assert not c["image"].endswith("-cuda")
            assert "nvidia.com/gpu" not in c["resources"]["limits"]
        if name == "dev":
            assert d["spec"]["replicas"] == 1 and env["MESHWATCH_LOG__LEVEL"]["value"] == "debug"


def test_production_objects():
    objs = build(K8S / "overlays" / "production")
    kinds = {(o["kind"], o["metadata"]["name"]) for o in objs}
    for c in ("ingest", "detector", "forecaster"):
        assert ("PodDisruptionBudget", f"meshwatch-{c}") in kinds
    for c in ("detector", "forecaster"):
        assert ("HorizontalPodAutoscaler", f"meshwatch-{c}") in kinds
    assert ("NetworkPolicy", "meshwatch-default-deny") in kinds
    jobs = [o for o in objs if o["kind"] == "Job"]
    assert jobs and jobs[0]["spec"]["template"]["spec"]["containers"][0]["args"][0] == "migrate"
    assert all(o["metadata"].get("namespace") == "meshwatch" for o in objs if o["kind"] != "Namespace")


def test_examples_are_valid():
    for path in EXAMPLES:
        for o in yaml.safe_load_all(path.read_text()):
            if o:
                validate(o)


def test_collector_routes_spans_by_trace_id():
    (cm,) = [
        o
        for o in yaml.safe_load_all((K8S / "examples" / "01-otel-collector-loadbalancing.yaml").read_text())
        if o and o["kind"] == "ConfigMap"
    ]
    cfg = yaml.safe_load(cm["data"]["config.yaml"])
    lb = cfg["exporters"]["loadbalancing"]
    assert lb["routing_key"] == "traceID"
    assert lb["resolver"]["k8s"]["service"] == "meshwatch-ingest-headless.meshwatch"
    assert lb["resolver"]["k8s"]["ports"] == [4317]
    # the headless Service the resolver watches exists in the base, on that port
    base = build(K8S / "base")
    (headless,) = [o for o in base if o["kind"] == "Service" and o["metadata"]["name"] == "meshwatch-ingest-headless"]
    assert headless["spec"]["clusterIP"] == "None"
    assert 4317 in [p["port"] for p in headless["spec"]["ports"]]
    pipelines = cfg["service"]["pipelines"]
    assert pipelines["traces"]["exporters"] == ["loadbalancing"]
    assert pipelines["metrics"]["exporters"] == ["otlp/meshwatch-metrics"]
    for p in pipelines.values():
        assert set(p["receivers"]) <= set(cfg["receivers"]) and set(p["exporters"]) <= set(cfg["exporters"])
        assert set(p["processors"]) <= set(cfg["processors"])


def test_clickhouse_installation():
    (chi,) = [o for o in yaml.safe_load_all((K8S / "examples" / "02-clickhouse-operator.yaml").read_text()) if o]
    assert (chi["apiVersion"], chi["kind"]) == ("clickhouse.altinity.com/v1", "ClickHouseInstallation")
    spec = chi["spec"]
    templates = {t["name"] for t in spec["templates"]["podTemplates"]}
    assert spec["defaults"]["templates"]["podTemplate"] in templates
    assert spec["defaults"]["templates"]["dataVolumeClaimTemplate"] in {
        t["name"] for t in spec["templates"]["volumeClaimTemplates"]
    }
    (svc,) = spec["templates"]["serviceTemplates"]
    # the name the production overlay and the chart's ha values use
    assert svc["generateName"].replace("{chi}", chi["metadata"]["name"]) == "clickhouse-meshwatch"
    assert "meshwatch/k8s_secret_password" in spec["configuration"]["users"]
    for tpl in spec["templates"]["podTemplates"]:
        kubernetes_validate.validate(
            {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"}, "spec": tpl["spec"]}, "1.33.0", strict=True
        )


def test_nats_cluster_of_three():
    objs = [o for o in yaml.safe_load_all((K8S / "examples" / "03-nats-jetstream-cluster.yaml").read_text()) if o]
    (sts,) = [o for o in objs if o["kind"] == "StatefulSet"]
    assert sts["spec"]["replicas"] == 3
    conf = [o for o in objs if o["kind"] == "ConfigMap"][0]["data"]["nats.conf"]
    for i in range(3):
        assert f"nats://nats-{i}.{sts['spec']['serviceName']}.nats.svc.cluster.local:6222" in conf
    assert "jetstream" in conf and "store_dir: /data" in conf
    assert any(o["kind"] == "PodDisruptionBudget" for o in objs)

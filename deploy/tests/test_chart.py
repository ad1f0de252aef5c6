"""The Helm chart rendered offline for every values file in helm/meshwatch/ci/: every object
valid for Kubernetes (strict), and the properties a production install relies on."""

from __future__ import annotations

import copy
import re
import tomllib

import helm_python
import kubernetes_validate
import pytest
import yaml

from conftest import (
    CHART_DIR,
    COMPONENTS,
    KUBE_VERSION,
    NAMESPACE,
    RELEASE,
    chart,
    component,
    find,
    load_values,
    objects,
    render,
    validate,
)

FULL = f"{RELEASE}-meshwatch"


def deployments(objs):
    return {component(d): d for d in find(objs, "Deployment")}


def pod_specs(objs):
    """Every pod template (Deployments, StatefulSets, Jobs) and bare Pod (helm test)."""
    for o in objs:
        if o["kind"] in ("Deployment", "StatefulSet", "Job"):
            yield o, o["spec"]["template"]["spec"]
        elif o["kind"] == "Pod":
            yield o, o["spec"]


def merged_values(values):
    return chart().merge_values(values)


def test_lint():
    report = helm_python.lint(str(CHART_DIR), strict=True, kube_version=f"v{KUBE_VERSION}")
    problems = [m for m in report["messages"] if m["severity"] >= 2] + report["errors"]
    assert not problems, problems


def test_every_object_is_valid_kubernetes(ci_case):
    name, _, objs = ci_case
    assert objs, f"{name}: nothing rendered"
    failures = []
    for o in objs:
        try:
            validate(o)
        except (kubernetes_validate.ValidationError, kubernetes_validate.SchemaNotFoundError) as e:
            failures.append(f"{o['kind']}/{o['metadata']['name']} ({o['__template__']}): {e}")
    assert not failures, "\n".join(failures)


def test_validator_rejects_unknown_fields():
    """The strict validation above can fail: an unknown field in a pod spec is refused."""
    objs = objects(render({}))
    d = copy.deepcopy(deployments(objs)["ingest"])
    d["spec"]["template"]["spec"]["containers"][0]["readinessProbes"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(d)


def test_names_are_unique_and_namespaced(ci_case):
    _, _, objs = ci_case
    seen = set()
    for o in objs:
        key = (o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"])
        assert key not in seen, f"duplicate {key}"
        seen.add(key)
        assert len(o["metadata"]["name"]) <= 63
        if o["kind"] == "ConfigMap" and "grafana_dashboard" in o["metadata"].get("labels", {}):
            continue
        assert o["metadata"].get("namespace") == NAMESPACE, f"{key} not in the release namespace"


def test_labels(ci_case):
    _, _, objs = ci_case
    for o in objs:
        labels = o["metadata"]["labels"]
        assert labels["app.kubernetes.io/instance"] == RELEASE
        assert labels["app.kubernetes.io/name"] == "meshwatch"
        assert labels["app.kubernetes.io/managed-by"] == "Helm"
        assert labels["helm.sh/chart"].startswith("meshwatch-")
    for o, _spec in pod_specs(objs):
        if o["kind"] == "Pod":
            continue
        selector = o["spec"]["selector"]["matchLabels"] if "selector" in o["spec"] else {}
        template_labels = o["spec"]["template"]["metadata"]["labels"]
        for k, v in selector.items():
            assert template_labels.get(k) == v, f"{o['metadata']['name']}: selector {k} not on its pods"


def test_pods_are_locked_down(ci_case):
    _, _, objs = ci_case
    for o, spec in pod_specs(objs):
        where = f"{o['kind']}/{o['metadata']['name']}"
        assert spec["enableServiceLinks"] is False, f"{where}: service links would add MESHWATCH_* variables"
        assert spec["automountServiceAccountToken"] is False, where
        psc = spec["securityContext"]
        assert psc["runAsNonRoot"] is True and psc["runAsUser"] > 0, where
        assert psc["seccompProfile"]["type"] == "RuntimeDefault", where
        for c in spec["containers"]:
            sc = c["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False, where
            assert sc["readOnlyRootFilesystem"] is True, where
            assert sc["capabilities"]["drop"] == ["ALL"], where
            assert "add" not in sc["capabilities"], where
            assert not sc.get("privileged", False), where
            assert "memory" in c["resources"]["limits"], f"{where}: no memory limit"
            assert c["resources"]["requests"], f"{where}: no requests"


def test_service_pods(ci_case):
    name, values, objs = ci_case
    v = merged_values(values)
    grace = v["shutdown"]["graceSeconds"]
    pre_stop = v["shutdown"]["preStopSleepSeconds"]
    deps = deployments(objs)
    enabled = [c for c in COMPONENTS if v[c]["enabled"]]
    assert sorted(deps) == sorted(enabled)
    for c, d in deps.items():
        spec = d["spec"]["template"]["spec"]
        assert spec["terminationGracePeriodSeconds"] > grace + pre_stop, c
        (ctr,) = spec["containers"]
        assert ctr["lifecycle"]["preStop"] == {"sleep": {"seconds": pre_stop}}
        assert ctr["command"] == [f"meshwatch-{c}"]
        assert ctr["args"] == ["--config", "/etc/meshwatch/config/config.toml"]
        assert ctr["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "admin"}
        assert ctr["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "admin"}
        assert ctr["startupProbe"]["httpGet"]["port"] == "admin"
        ports = {p["name"]: p["containerPort"] for p in ctr["ports"]}
        assert (
            ports["admin"]
            == {"ingest": 9464, "detector": 9465, "forecaster": 9466, "aggregator": 9467, "simulator": 9464}[c]
        )
        # no MESHWATCH_ variable that the config loader would misread, no secret in plain text
        for e in ctr.get("env", []):
            if e["name"].startswith("MESHWATCH_"):
                assert "__" in e["name"], e["name"]
            if re.search(r"PASSWORD|TOKEN", e["name"]):
                assert "valueFrom" in e and "value" not in e, e["name"]
        # anti-affinity by default, or what the values set
        assert spec["affinity"], c
        assert d["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
        if v[c].get("autoscaling", {}).get("enabled"):
            assert "replicas" not in d["spec"], f"{c}: replicas fights the HPA"
        else:
            assert d["spec"]["replicas"] == v[c]["replicaCount"]


def test_config_files(ci_case):
    name, values, objs = ci_case
    v = merged_values(values)
    for cm in find(objs, "ConfigMap"):
        c = component(cm)
        if c not in COMPONENTS:
            continue
        cfg = tomllib.loads(cm["data"]["config.toml"])
        assert cfg["shutdown"]["grace"] == f"{v['shutdown']['graceSeconds']}s"
        assert cfg["log"]["format"] == v["log"]["format"]
        if c == "ingest":
            assert cfg["graph"]["window"] == "10s", "the shipped models were trained on 10 s windows"
        if c != "simulator":
            expected = f"nats://{FULL}-nats:4222" if v["quickstart"]["enabled"] else v["nats"]["url"]
            assert cfg["nats"]["url"] == expected
            assert "password" not in cfg["nats"] and "token" not in cfg["nats"]
        if c in ("detector", "forecaster"):
            assert cfg["model"]["dir"] == f"/opt/meshwatch/models/{c}"
            assert cfg["model"]["execution_provider"] == ("cuda" if v[c]["gpu"]["enabled"] else "cpu")
        if c == "aggregator":
            ch = cfg["sink"]["clickhouse"]
            assert ch["url"] == (
                f"http://{FULL}-clickhouse:8123" if v["quickstart"]["enabled"] else v["clickhouse"]["url"]
            )
            assert "password" not in ch


def test_pdbs_and_hpas(ci_case):
    _, values, objs = ci_case
    v = merged_values(values)
    pdbs = {component(p) for p in find(objs, "PodDisruptionBudget")}
    assert pdbs == {c for c in COMPONENTS if v[c]["enabled"] and v[c]["podDisruptionBudget"]["enabled"]}
    hpas = {component(h): h for h in find(objs, "HorizontalPodAutoscaler")}
    assert set(hpas) == {c for c in ("ingest", "detector", "forecaster") if v[c]["autoscaling"]["enabled"]}
    for c, h in hpas.items():
        assert h["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": f"{FULL}-{c}"}


def test_services_match_pods(ci_case):
    _, _, objs = ci_case
    pods = {}
    for o, spec in pod_specs(objs):
        if o["kind"] in ("Deployment", "StatefulSet"):
            pods[tuple(sorted(o["spec"]["selector"]["matchLabels"].items()))] = spec
    for s in find(objs, "Service"):
        key = tuple(sorted(s["spec"]["selector"].items()))
        assert key in pods, f"Service {s['metadata']['name']} selects no pods"
        names = {p["name"] for c in pods[key]["containers"] for p in c["ports"]}
        for p in s["spec"]["ports"]:
            assert p["targetPort"] in names, f"{s['metadata']['name']}: no container port {p['targetPort']}"


def test_network_policies_cover_every_pod(ci_case):
    _, values, objs = ci_case
    v = merged_values(values)
    if not v["networkPolicy"]["enabled"]:
        return
    selected = [tuple(sorted(p["spec"]["podSelector"]["matchLabels"].items())) for p in find(objs, "NetworkPolicy")]
    for o, _ in pod_specs(objs):
        if o["kind"] in ("Deployment", "StatefulSet"):
            assert tuple(sorted(o["spec"]["selector"]["matchLabels"].items())) in selected, o["metadata"]["name"]


def test_defaults():
    objs = objects(render({}))
    deps = deployments(objs)
    assert set(deps) == {"ingest", "detector", "forecaster", "aggregator"}, "simulator is off by default"
    assert not find(objs, "StatefulSet"), "NATS and ClickHouse are external by default"
    assert not find(objs, "ServiceMonitor")
    for d in deps.values():
        assert d["spec"]["template"]["spec"]["containers"][0]["image"] == "ghcr.io/meshwatch/meshwatch:0.1.0"
        anti = d["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"]
        assert (
            anti["preferredDuringSchedulingIgnoredDuringExecution"][0]["podAffinityTerm"]["topologyKey"]
            == "kubernetes.io/hostname"
        )
    (job,) = find(objs, "Job")
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
    ctr = job["spec"]["template"]["spec"]["containers"][0]
    assert ctr["command"] == ["meshwatch"] and ctr["args"][0] == "migrate"
    assert "--url=http://clickhouse:8123" in ctr["args"]
    (test_pod,) = find(objs, "Pod")
    assert test_pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    script = test_pod["spec"]["containers"][0]["args"][0]
    assert "/v1/traces" in test_pod["spec"]["containers"][0]["env"][0]["value"]
    assert '"kind":3' in script and '"kind":2' in script
    headless = find(objs, "Service", f"{FULL}-ingest-headless")
    assert headless and headless[0]["spec"]["clusterIP"] == "None"


def test_quickstart():
    objs = objects(render(load_values(CHART_DIR / "ci" / "quickstart-values.yaml")))
    sts = {component(s): s for s in find(objs, "StatefulSet")}
    assert set(sts) == {"nats", "clickhouse"}
    for s in sts.values():
        assert "not-for-production" in " ".join(s["metadata"]["annotations"]), "quick start must say so"
        assert s["spec"]["replicas"] == 1
        (claim,) = s["spec"]["volumeClaimTemplates"]
        assert claim["spec"]["resources"]["requests"]["storage"]
    (secret,) = find(objs, "Secret", f"{FULL}-quickstart-clickhouse")
    assert set(secret["data"]) == {"user", "password"}
    (job,) = find(objs, "Job")
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "post-install,pre-upgrade"
    agg = deployments(objs)["aggregator"]["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e for e in agg["env"]}
    assert env["MESHWATCH_SINK__CLICKHOUSE__PASSWORD"]["valueFrom"]["secretKeyRef"] == {
        "name": f"{FULL}-quickstart-clickhouse",
        "key": "password",
    }
    sim_cfg = tomllib.loads(find(objs, "ConfigMap", f"{FULL}-simulator")[0]["data"]["config.toml"])
    assert sim_cfg["export"]["endpoint"] == f"http://{FULL}-ingest:4317"
    dashboards = [c for c in find(objs, "ConfigMap") if c["metadata"]["labels"].get("grafana_dashboard") == "1"]
    assert len(dashboards) == 4
    for d in dashboards:
        (text,) = d["data"].values()
        assert "${DS_CLICKHOUSE}" not in text and "${DS_PROMETHEUS}" not in text


def test_gpu():
    objs = objects(render(load_values(CHART_DIR / "ci" / "gpu-values.yaml")))
    deps = deployments(objs)
    for c in ("detector", "forecaster"):
        spec = deps[c]["spec"]["template"]["spec"]
        ctr = spec["containers"][0]
        assert ctr["image"].endswith(":0.1.0-cuda"), ctr["image"]
        assert ctr["resources"]["limits"]["nvidia.com/gpu"] == 1
        assert spec["nodeSelector"]["nvidia.com/gpu.present"] == "true"
        assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in spec["tolerations"]
    assert deps["detector"]["spec"]["template"]["spec"]["runtimeClassName"] == "nvidia"
    for c in ("ingest", "aggregator"):
        ctr = deps[c]["spec"]["template"]["spec"]["containers"][0]
        assert ctr["image"].endswith(":0.1.0")
        assert "nvidia.com/gpu" not in ctr["resources"].get("limits", {})
    fc = tomllib.loads(find(objs, "ConfigMap", f"{FULL}-forecaster")[0]["data"]["config.toml"])
    assert fc["model"] == {**fc["model"], "execution_provider": "cuda", "on_unavailable": "fallback-to-cpu"}
    (job,) = find(objs, "Job")
    assert not job["spec"]["template"]["spec"]["containers"][0]["image"].endswith("-cuda")


def test_ha():
    objs = objects(render(load_values(CHART_DIR / "ci" / "ha-values.yaml")))
    deps = deployments(objs)
    digest = "@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
    for c, d in deps.items():
        spec = d["spec"]["template"]["spec"]
        ctr = spec["containers"][0]
        assert ctr["image"].endswith(digest)
        assert spec["terminationGracePeriodSeconds"] == 60
        mounts = {m["mountPath"] for m in ctr["volumeMounts"]}
        assert {"/etc/meshwatch/nats-creds", "/etc/meshwatch/nats-tls"} <= mounts, c
        cfg = tomllib.loads(find(objs, "ConfigMap", f"{FULL}-{c}")[0]["data"]["config.toml"])
        assert cfg["nats"]["stream_replicas"] == 3
        assert cfg["nats"]["tls"] == {
            "require": True,
            "ca_file": "/etc/meshwatch/nats-tls/ca.crt",
            "cert_file": "/etc/meshwatch/nats-tls/tls.crt",
            "key_file": "/etc/meshwatch/nats-tls/tls.key",
        }
        assert cfg["nats"]["credentials_file"] == "/etc/meshwatch/nats-creds/nats.creds"
    sms = find(objs, "ServiceMonitor")
    assert {component(s) for s in sms} == set(deps)
    for s in sms:
        assert s["metadata"]["labels"]["release"] == "kube-prometheus-stack"
        assert s["spec"]["endpoints"] == [
            {"port": "admin", "path": "/metrics", "scheme": "http", "interval": "30s", "scrapeTimeout": "10s"}
        ]
    assert len(find(objs, "HorizontalPodAutoscaler")) == 3
    agg_env = {e["name"] for e in deps["aggregator"]["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert {"MESHWATCH_SINK__CLICKHOUSE__USER", "MESHWATCH_SINK__CLICKHOUSE__PASSWORD"} <= agg_env
    ingest_np = find(objs, "NetworkPolicy", f"{FULL}-ingest")[0]
    otlp_rule = ingest_np["spec"]["ingress"][1]
    assert otlp_rule["from"][0]["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "otel"}
    for d in find(objs, "ConfigMap"):
        if d["metadata"]["labels"].get("grafana_dashboard"):
            assert d["metadata"]["namespace"] == "monitoring"


def test_nats_password_from_secret():
    objs = objects(
        render({"nats": {"auth": {"existingSecret": "nats-auth", "userKey": "user", "passwordKey": "password"}}})
    )
    for d in deployments(objs).values():
        env = {e["name"]: e for e in d["spec"]["template"]["spec"]["containers"][0]["env"]}
        assert env["MESHWATCH_NATS__PASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": "nats-auth", "key": "password"}
        assert env["MESHWATCH_NATS__USER"]["valueFrom"]["secretKeyRef"] == {"name": "nats-auth", "key": "user"}


def test_grace_shorter_than_drain_is_refused():
    with pytest.raises(helm_python.HelmError, match="terminationGracePeriodSeconds"):
        render({"shutdown": {"graceSeconds": 60}})


def test_schema_rejects_invalid_values():
    bad = load_values(CHART_DIR.parents[1] / "deploy" / "tests" / "fixtures" / "invalid-values.yaml")
    with pytest.raises(helm_python.HelmValuesError) as err:
        chart().validate_schema(chart().merge_values(bad))
    for where in ("/ingest", "/clickhouse/url", "/detector/gpu/onUnavailable", "/shutdown/graceSeconds"):
        assert where in str(err.value), f"{where} not reported: {err.value}"
    with pytest.raises(helm_python.HelmError):
        render(bad)


@pytest.mark.parametrize(
    "values",
    [
        {"ingest": {"config": {"graph": {"window": 10}}}},
        {"nats": {"url": "http://nats:4222"}},
        {"image": {"digest": "latest"}},
        {"unknownTopLevel": True},
    ],
)
def test_schema_rejects(values):
    with pytest.raises(helm_python.HelmError):
        render(values)


def test_ci_values_pass_the_schema(ci_case):
    _, values, _ = ci_case
    chart().validate_schema(chart().merge_values(values))


def test_readme_documents_every_value():
    readme = (CHART_DIR / "README.md").read_text()
    documented = set(re.findall(r"^\| `([^`]+)` \|", readme, re.M))

    def leaves(prefix, node):
        if (
            isinstance(node, dict)
            and node
            and not prefix.endswith((".config", "Probe", ".resources", "podSecurityContext", "securityContext"))
        ):
            for k, val in node.items():
                yield from leaves(f"{prefix}.{k}" if prefix else k, val)
        else:
            yield prefix

    values = yaml.safe_load((CHART_DIR / "values.yaml").read_text())
    missing = [k for k in leaves("", values) if k not in documented]
    assert not missing, f"values not in helm/meshwatch/README.md: {missing}"


def test_model_directory_from_a_volume():
    values = {
        "detector": {
            "extraVolumes": [{"name": "models", "persistentVolumeClaim": {"claimName": "meshwatch-models"}}],
            "extraVolumeMounts": [{"name": "models", "mountPath": "/models", "readOnly": True}],
            "config": {"model": {"dir": "/models/detector-v2"}},
        }
    }
    objs = objects(render(values))
    for o in objs:
        validate(o)
    spec = deployments(objs)["detector"]["spec"]["template"]["spec"]
    assert {"name": "models", "persistentVolumeClaim": {"claimName": "meshwatch-models"}} in spec["volumes"]
    assert {"name": "models", "mountPath": "/models", "readOnly": True} in spec["containers"][0]["volumeMounts"]
    cfg = tomllib.loads(find(objs, "ConfigMap", f"{FULL}-detector")[0]["data"]["config.toml"])
    assert cfg["model"]["dir"] == "/models/detector-v2"
    assert cfg["model"]["execution_provider"] == "cpu", "the chart's settings stay beside the user's"


@pytest.mark.parametrize("off", ["ingest", "detector", "forecaster", "aggregator"])
def test_each_service_can_be_turned_off(off):
    values = {off: {"enabled": False}}
    objs = objects(render(values))
    for o in objs:
        validate(o)
    assert off not in deployments(objs)
    assert not [o for o in objs if component(o) == off]
    if off == "aggregator":
        assert not find(objs, "Job"), "no migrations without the aggregator"
    if off == "ingest":
        assert not find(objs, "Pod"), "no helm test without the ingest"

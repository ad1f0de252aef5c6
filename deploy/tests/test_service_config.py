"""The config files the chart renders, read by the real services: each binary's --check-config
accepts the file (strict: an unknown key or a wrong type is an error), with the environment the
pod gets. Needs the binaries (MESHWATCH_BIN_DIR, or $CARGO_TARGET_DIR/{release,debug}) and,
for the migrations, ClickHouse (CLICKHOUSE_URL; scripts/test-deploy.sh starts one): without them
these tests fail saying what is missing — never a silent skip."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import CHART_DIR, COMPONENTS, component, find, load_values, objects, render


def bin_dir() -> Path | None:
    candidates = []
    if os.environ.get("MESHWATCH_BIN_DIR"):
        candidates.append(Path(os.environ["MESHWATCH_BIN_DIR"]))
    target = Path(
        os.environ.get(
            "CARGO_TARGET_DIR", Path(os.environ.get("MESHWATCH_CACHE", Path.home() / ".cache" / "meshwatch")) / "target"
        )
    )
    candidates += [target / "release", target / "debug"]
    for d in candidates:
        if all((d / f"meshwatch-{c}").is_file() for c in COMPONENTS) and (d / "meshwatch").is_file():
            return d
    return None


BIN = bin_dir()


@pytest.fixture(autouse=True)
def _binaries():
    assert BIN is not None, (
        "no meshwatch-* binaries: build them first (cargo build --workspace --bins) or set MESHWATCH_BIN_DIR"
    )


CASES = {
    "defaults": {},
    "quickstart": load_values(CHART_DIR / "ci" / "quickstart-values.yaml"),
    "gpu": load_values(CHART_DIR / "ci" / "gpu-values.yaml"),
    "ha": load_values(CHART_DIR / "ci" / "ha-values.yaml"),
    "aggregator-settings": {
        "aggregator": {
            "config": {
                "batch": {"max_rows": 1000, "max_delay": "2s"},
                "thresholds": {"risk": 0.0001},
                "incidents": {"resolve_after_windows": 5},
            }
        },
        "detector": {"config": {"stream": {"top_contributions": 8}}},
        # the examples of helm/meshwatch/README.md
        "ingest": {"config": {"graph": {"window": "10s", "max_nodes_per_graph": 2000}}},
    },
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_check_config_accepts_rendered_files(case, tmp_path):
    objs = objects(render(CASES[case]))
    checked = 0
    for cm in find(objs, "ConfigMap"):
        c = component(cm)
        if c not in COMPONENTS:
            continue
        # Files the pod mounts (NATS credentials and certificates) exist in a temporary root.
        text = cm["data"]["config.toml"].replace("/etc/meshwatch/", f"{tmp_path}/etc/meshwatch/")
        for sub in ("nats-creds/nats.creds", "nats-tls/ca.crt", "nats-tls/tls.crt", "nats-tls/tls.key"):
            (tmp_path / "etc/meshwatch" / sub).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / "etc/meshwatch" / sub).write_text("placeholder\n")
        path = tmp_path / f"{c}.toml"
        path.write_text(text)
        (dep,) = [d for d in find(objs, "Deployment") if component(d) == c]
        env = {"PATH": "/usr/bin:/bin", "HOSTNAME": f"{c}-7c9f8d6b5-x2k4p"}
        for e in dep["spec"]["template"]["spec"]["containers"][0].get("env", []):
            env[e["name"]] = e.get("value", "secret-from-kubernetes")
        result = subprocess.run(
            [str(BIN / f"meshwatch-{c}"), "--config", str(path), "--check-config"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, f"{case}/{c}:\n{result.stderr}\n--- config ---\n{text}"
        checked += 1
    assert checked >= 4


def test_check_config_catches_a_bad_key(tmp_path):
    """The check above can fail: a key the ingest does not know is refused."""
    objs = objects(render({"ingest": {"config": {"graph": {"windw": "10s"}}}}))
    (cm,) = [c for c in find(objs, "ConfigMap") if component(c) == "ingest"]
    path = tmp_path / "ingest.toml"
    path.write_text(cm["data"]["config.toml"])
    result = subprocess.run(
        [str(BIN / "meshwatch-ingest"), "--config", str(path), "--check-config"],
        env={"PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2 and "windw" in result.stderr, result.stderr


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_helm_test_hook_against_the_real_ingest(tmp_path):
    """The `helm test` pod's script, run against a real meshwatch-ingest (NATS unreachable: the
    ingest still accepts data and buffers snapshots), passes; with an invalid span it fails."""
    assert shutil.which("curl") is not None, "curl is needed (apt-get install curl)"
    import time
    import urllib.request

    (pod,) = find(objects(render({})), "Pod")
    ctr = pod["spec"]["containers"][0]
    assert ctr["command"] == ["/bin/sh", "-ec"]
    script = ctr["args"][0]
    admin, grpc, http = free_port(), free_port(), free_port()
    cfg = tmp_path / "ingest.toml"
    cfg.write_text(
        f'[admin]\nlisten = "127.0.0.1:{admin}"\n[otlp]\ngrpc_listen = "127.0.0.1:{grpc}"\n'
        f'http_listen = "127.0.0.1:{http}"\n[graph]\nwindow = "10s"\n'
        f'[nats]\nurl = "nats://127.0.0.1:{free_port()}"\n[shutdown]\ngrace = "2s"\n'
    )
    log = (tmp_path / "ingest.log").open("w")
    proc = subprocess.Popen(
        [str(BIN / "meshwatch-ingest"), "--config", str(cfg)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={"PATH": "/usr/bin:/bin"},
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{admin}/healthz", timeout=1):
                    break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "ingest.log").read_text()
                time.sleep(0.2)
        env = {"PATH": "/usr/bin:/bin", "INGEST_URL": f"http://127.0.0.1:{http}/v1/traces", "TMPDIR": str(tmp_path)}
        ok = subprocess.run(["sh", "-ec", script], env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path)
        assert ok.returncode == 0, ok.stdout + ok.stderr
        assert "the ingest accepted the OTLP request" in ok.stdout
        bad = script.replace("5b8efff798038103d269b633813fc60c", "0" * 32)
        refused = subprocess.run(["sh", "-ec", bad], env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path)
        assert refused.returncode != 0 and "spans rejected" in refused.stdout, refused.stdout
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def test_migrations_job_command_against_clickhouse():
    """The migrations Job's command line, run by the real CLI against ClickHouse 26.9 (in a
    database of its own, dropped afterwards)."""
    assert os.environ.get("CLICKHOUSE_URL"), "CLICKHOUSE_URL not set (scripts/test-deploy.sh starts one)"
    import urllib.request
    import uuid

    assert (BIN / "meshwatch").is_file(), f"no meshwatch CLI in {BIN}"
    (job,) = find(objects(render({})), "Job")
    ctr = job["spec"]["template"]["spec"]["containers"][0]
    db = f"meshwatch_job_{uuid.uuid4().hex[:12]}"
    url = os.environ["CLICKHOUSE_URL"]
    args = [
        a.replace("--url=http://clickhouse:8123", f"--url={url}").replace("--database=meshwatch", f"--database={db}")
        for a in ctr["args"]
    ]
    assert f"--url={url}" in args and f"--database={db}" in args
    try:
        for _ in range(2):  # idempotent: a second run (the next upgrade's hook) changes nothing
            result = subprocess.run(
                [str(BIN / ctr["command"][0]), *args],
                env={"PATH": "/usr/bin:/bin"},
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert result.returncode == 0, result.stdout + result.stderr
        req = urllib.request.Request(
            f"{url}/?database={db}",
            data=b"SELECT name FROM system.tables WHERE database = currentDatabase() ORDER BY name FORMAT TSV",
            method="POST",
        )
        with urllib.request.urlopen(req, timeout=30) as r:
            tables = r.read().decode().split()
        assert {"graph_nodes", "graph_edges", "anomaly_scores", "incidents", "forecasts", "schema_migrations"} <= set(
            tables
        )
    finally:
        urllib.request.urlopen(
            urllib.request.Request(url, data=f"DROP DATABASE IF EXISTS {db}".encode(), method="POST"), timeout=30
        ).read()


@pytest.mark.parametrize("overlay", ["base", "dev", "production", "gpu"])
def test_check_config_accepts_the_kustomize_output(overlay, tmp_path):
    """Each Deployment of each overlay: its generated config file and its environment
    (e.g. MESHWATCH_MODEL__EXECUTION_PROVIDER=cuda in gpu) accepted by the service."""
    import yaml

    k8s = CHART_DIR.parents[1] / "k8s"
    path = k8s / "base" if overlay == "base" else k8s / "overlays" / overlay
    out = subprocess.run(["kubectl", "kustomize", str(path)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    objs = [o for o in yaml.safe_load_all(out.stdout) if o]
    configmaps = {o["metadata"]["name"]: o for o in objs if o["kind"] == "ConfigMap"}
    checked = 0
    for d in objs:
        if d["kind"] != "Deployment" or d["metadata"]["labels"].get("app.kubernetes.io/name") != "meshwatch":
            continue
        spec = d["spec"]["template"]["spec"]
        (ctr,) = spec["containers"]
        (vol,) = [v for v in spec["volumes"] if v["name"] == "config"]
        cfg = tmp_path / f"{d['metadata']['name']}.toml"
        cfg.write_text(configmaps[vol["configMap"]["name"]]["data"]["config.toml"])
        env = {"PATH": "/usr/bin:/bin"}
        for e in ctr.get("env", []):
            env[e["name"]] = e.get("value", "secret-from-kubernetes")
        result = subprocess.run(
            [str(BIN / ctr["command"][0]), "--config", str(cfg), "--check-config"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, f"{overlay}/{d['metadata']['name']}: {result.stderr}"
        checked += 1
    assert checked == 4

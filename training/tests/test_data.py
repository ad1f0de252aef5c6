"""data.py against a dataset built by the real Rust CLI (`meshwatch dataset build`).

The CLI is found through the environment variable MESHWATCH_BIN (scripts/test.sh sets it to the
binary the cargo test step built). Without it these tests FAIL: they never skip silently.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess

import numpy as np
import pytest
import torch
from conftest import FE, F

from meshwatch_training.data import Dataset, DatasetError, collate
from meshwatch_training.models import Detector, Forecaster

REPO = pathlib.Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures" / "nezha"
TRACES = [
    FIXTURES / "trainticket-2023-01-29-0850-faultfree.otlp.jsonl",
    FIXTURES / "onlineboutique-2022-08-22-0353.otlp.jsonl",
]
T = 4


def meshwatch_bin() -> str:
    path = os.environ.get("MESHWATCH_BIN")
    if not path:
        pytest.fail(
            "MESHWATCH_BIN is not set: point it at the `meshwatch` CLI binary (cargo build -p "
            "meshwatch-cli; scripts/test.sh sets it to $CARGO_TARGET_DIR/debug/meshwatch)",
            pytrace=False,
        )
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        pytest.fail(f"MESHWATCH_BIN={path} is not an executable file", pytrace=False)
    return path


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    out = tmp_path_factory.mktemp("ds") / "out"
    cmd = [meshwatch_bin(), "dataset", "build"]
    for trace in TRACES:
        cmd += ["--traces", str(trace)]
    # 10 s windows and small shards: several shards with overlap from the small fixtures.
    cmd += ["--window", "10s", "--steps", str(T), "--shard-steps", "6", "--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stderr}"
    return out


def test_reads_manifest_and_schema(dataset_dir: pathlib.Path) -> None:
    ds = Dataset(dataset_dir)
    assert ds.feature_schema_version == 1
    assert len(ds.node_feature_names) == F and len(ds.edge_feature_names) == FE
    assert ds.target_names == ["request_rate", "latency_p90_ms", "latency_p99_ms", "error_ratio"]
    assert {g["graph"] for g in ds.graphs} == {"trainticket", "onlineboutique"}
    assert any(len(g["shards"]) > 1 for g in ds.graphs), "want overlapping shards in this test"


def test_windows_cover_each_sequence_once(dataset_dir: pathlib.Path) -> None:
    ds = Dataset(dataset_dir)
    window_s = ds.manifest["window_ms"] // 1000
    for t in (1, 2, T):
        by_graph: dict[str, list[int]] = {}
        for smp in ds.windows(t):
            assert smp.node_features.shape == (t, smp.num_nodes, F)
            assert smp.node_features.dtype == np.float32
            assert smp.edge_index.dtype == np.int64 and smp.edge_index.shape[0] == 2
            assert smp.edge_features.shape == (t, smp.num_edges, FE)
            assert np.all(np.diff(smp.window_start) == window_s)
            by_graph.setdefault(smp.graph, []).append(int(smp.window_start[0]))
        for g in ds.graphs:
            starts = by_graph[g["graph"]]
            windows = g["windows_observed"] + g["windows_missing"]
            assert len(starts) == len(set(starts)) == windows - t + 1, (g["graph"], t)


def test_collate_is_a_disjoint_union_and_feeds_the_models(dataset_dir: pathlib.Path) -> None:
    ds = Dataset(dataset_dir)
    first: dict[str, object] = {}
    for smp in ds.windows(T):
        first.setdefault(smp.graph, smp)
    a, b = first["trainticket"], first["onlineboutique"]
    with pytest.raises(ValueError, match="window_start"):
        collate([a, b])
    batch = collate([a, b], same_time=False)
    n = a.num_nodes + b.num_nodes
    assert batch.node_features.shape == (T, n, F)
    assert batch.node_offset.tolist() == [0, a.num_nodes, n]
    assert torch.equal(batch.edge_index[:, : a.num_edges], torch.from_numpy(a.edge_index))
    assert torch.equal(
        batch.edge_index[:, a.num_edges :], torch.from_numpy(b.edge_index) + a.num_nodes
    )
    torch.manual_seed(0)
    with torch.no_grad():
        score, contrib = Detector(F, FE, dim=16).eval()(*batch.model_inputs())
        fcast, interval = Forecaster(F, FE, horizon=2, dim=16).eval()(
            *collate([a]).model_inputs(), collate([a]).window_start
        )
    assert score.shape == (n,) and contrib.shape == (n, F) and torch.isfinite(score).all()
    assert fcast.shape == (2, a.num_nodes, 4) and torch.isfinite(interval).all()


def test_schema_mismatch_is_refused(dataset_dir: pathlib.Path, tmp_path: pathlib.Path) -> None:
    bad = tmp_path / "bad"
    shutil.copytree(dataset_dir, bad)
    manifest = json.loads((bad / "manifest.json").read_text())
    manifest["feature_schema_version"] = 2
    (bad / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(DatasetError, match="feature_schema_version"):
        Dataset(bad)
    manifest["feature_schema_version"] = 1
    manifest["node_features"] = [*manifest["node_features"][1:], manifest["node_features"][0]]
    (bad / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(DatasetError, match="node_feature_names"):
        list(Dataset(bad).windows(T))


def test_missing_manifest_is_an_interrupted_build(tmp_path: pathlib.Path) -> None:
    with pytest.raises(DatasetError, match="interrupted"):
        Dataset(tmp_path)

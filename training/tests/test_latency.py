"""``python -m meshwatch_training latency``: the rebuilt models carry the shipped weights (their
outputs are ONNX Runtime's within the artifact's parity tolerance), the command prints one JSON
line, and a model whose ONNX file does not fit falls back to random weights and says so."""

from __future__ import annotations

import json
import pathlib
import shutil

import numpy as np
import pytest
import torch

from meshwatch_training import latency
from meshwatch_training.__main__ import main
from meshwatch_training.export import compare, ort_outputs, ort_session, random_case, torch_outputs
from meshwatch_training.latency import model_with_weights, percentile, rebuild

MODELS = pathlib.Path(__file__).resolve().parents[2] / "models"


def _case(manifest: dict, n: int, e: int, seed: int) -> dict[str, np.ndarray]:
    f, fe = len(manifest["node_features"]), len(manifest["edge_features"])
    window_s = max(1, int(manifest["window_ms"]) // 1000)
    return random_case(int(manifest["steps"]), n, e, f, fe, seed, window_s)


@pytest.mark.parametrize("kind", ["detector", "forecaster"])
def test_shipped_weights_reproduce_onnx_runtime(kind: str) -> None:
    artifact = MODELS / kind
    model, manifest, weights, note = model_with_weights(artifact)
    assert weights == "onnx", note
    parity = json.loads((artifact / "parity.json").read_text())
    atol, rtol = parity["atol"], parity["rtol"]
    sess = ort_session(artifact / "model.onnx")
    names = ["anomaly_score", "feature_contribution"]
    if kind == "forecaster":
        names = ["forecast", "forecast_interval"]
    for seed, (n, e) in enumerate([(9, 14), (40, 80)]):
        case = _case(manifest, n, e, 1000 + seed)
        want = ort_outputs(sess, kind, case)
        got = torch_outputs(model, kind, case)
        _, failures = compare(got, want, names, atol, rtol)
        assert not failures, failures


def test_random_weights_differ_from_onnx_runtime() -> None:
    """The check above can fail: a model with seeded random weights does not reproduce it."""
    artifact = MODELS / "detector"
    model, manifest, _, _ = model_with_weights(artifact)
    random_model = rebuild(manifest, seed=3)
    case = _case(manifest, 9, 14, 7)
    want = ort_outputs(ort_session(artifact / "model.onnx"), "detector", case)
    _, failures = compare(
        torch_outputs(random_model, "detector", case), want, ["a", "b"], 1e-4, 1e-3
    )
    assert failures
    _, failures = compare(torch_outputs(model, "detector", case), want, ["a", "b"], 1e-4, 1e-3)
    assert not failures


def test_command_prints_one_json_line(tmp_path, capsys) -> None:
    manifest = json.loads((MODELS / "forecaster" / "manifest.json").read_text())
    inputs = tmp_path / "inputs.npz"
    np.savez(inputs, **_case(manifest, 12, 24, 5))
    args = ["latency", "--artifact", str(MODELS / "forecaster"), "--inputs", str(inputs)]
    assert main([*args, "--warmup", "1", "--iterations", "4"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1
    report = json.loads(lines[0])
    assert report["runs"] == 4
    assert report["weights"] == "onnx"
    assert report["device"] == "cpu" and report["threads"] == 1
    assert 0 < report["p50_ms"] <= report["p99_ms"]
    # only a GPU has a device to keep the inputs on
    assert report["resident_p50_ms"] is None and report["resident_p99_ms"] is None


def test_timed_runs_with_copies_return_the_outputs_to_the_host(monkeypatch) -> None:
    """``copies=True`` moves every output back with ``.cpu()``; without, nothing is copied."""
    manifest = json.loads((MODELS / "forecaster" / "manifest.json").read_text())
    model, _, _, _ = model_with_weights(MODELS / "forecaster")
    moved = []
    real_cpu = torch.Tensor.cpu

    def counting_cpu(self: torch.Tensor) -> torch.Tensor:
        moved.append(self.shape)
        return real_cpu(self)

    monkeypatch.setattr(torch.Tensor, "cpu", counting_cpu)
    case = _case(manifest, 12, 9, 3)
    times = latency.measure(model, "forecaster", case, warmup=1, iterations=3, copies=True)
    assert len(times) == 3 and all(t > 0 for t in times)
    assert len(moved) == 2 * 4  # forecast and forecast_interval, each of the 4 runs
    moved.clear()
    latency.measure(model, "forecaster", case, warmup=1, iterations=3, copies=False)
    assert moved == []


def test_a_model_that_does_not_fit_keeps_random_weights(tmp_path, capsys) -> None:
    artifact = tmp_path / "detector"
    shutil.copytree(MODELS / "detector", artifact)
    path = artifact / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["config"]["model"]["dim"] = 16  # not the architecture model.onnx was exported from
    path.write_text(json.dumps(manifest))
    inputs = tmp_path / "inputs.npz"
    np.savez(inputs, **_case(manifest, 6, 8, 2))
    args = ["latency", "--artifact", str(artifact), "--inputs", str(inputs), "--iterations", "2"]
    assert main([*args, "--warmup", "0"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["weights"] == "random"
    assert "seeded random weights" in report["weights_note"]
    assert report["runs"] == 2


def test_bad_inputs_are_refused_with_a_message(tmp_path, capsys) -> None:
    inputs = tmp_path / "inputs.npz"
    np.savez(inputs, node_features=np.zeros((12, 3, 29), dtype=np.float32))
    args = ["latency", "--artifact", str(MODELS / "detector"), "--inputs", str(inputs)]
    assert main(args) == 2
    assert "no node_mask" in capsys.readouterr().err


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert percentile([3.0], 99) == 3.0
    assert percentile([1.0, 2.0], 50) == 1.0
    assert percentile([1.0, 2.0], 99) == 2.0

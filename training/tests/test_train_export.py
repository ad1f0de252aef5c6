"""Training, export and the benchmark end to end on a tiny dataset built by the real Rust CLI.

`meshwatch simulate` writes 20 minutes of Online Boutique traffic with one fault, `meshwatch
dataset build` encodes it; a few training steps of each model, the ONNX export with checker and
parity (ONNX Runtime against PyTorch), then the Rust side: `meshwatch model check` loads the
artifact with `ort` and replays the parity vectors. The binary comes from MESHWATCH_BIN (set by
scripts/test.sh); without it these tests fail, they never skip.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
import torch
from test_data import meshwatch_bin

from meshwatch_training.config import ConfigError, load_config
from meshwatch_training.data import Dataset
from meshwatch_training.export import ParityError, compare, export_model
from meshwatch_training.pipeline import train_and_export
from meshwatch_training.ranges import RangeError, parse_range
from meshwatch_training.train import inject, load_samples, score_loss_weights

T, H = 6, 2


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    """20 simulated minutes (one cpu fault) and their dataset, 30 s windows."""
    root = tmp_path_factory.mktemp("sim")
    binary = meshwatch_bin()
    subprocess.run(
        [binary, "simulate", "--topology", "onlineboutique", "--duration", "20m", "--rate", "2",
         "--seed", "3", "--faults", "latency:service=cartservice,factor=8,start=13m,duration=3m",
         "--out", str(root / "raw")],
        check=True, capture_output=True,
    )  # fmt: skip
    subprocess.run(
        [binary, "dataset", "build", "--traces", str(root / "raw/traces.otlp.jsonl"),
         "--metrics", str(root / "raw/metrics.otlp.jsonl"),
         "--labels", str(root / "raw/labels.jsonl"), "--window", "30s",
         "--steps", str(T + H), "--out", str(root / "ds")],
        check=True, capture_output=True,
    )  # fmt: skip
    return root


def _cfg(kind: str, out: pathlib.Path | None, ds: pathlib.Path) -> object:
    sets = [
        f'model.kind="{kind}"',
        f"data.steps={T}",
        f"model.horizon={H}",
        "model.dim=16",
        "train.epochs=2",
        "train.batch_size=8",
        f'data.dataset="{ds}"',
        'data.train_range="0%..60%"',
    ]
    if out is not None:
        sets.append(f'export.out="{out}"')
    return load_config(None, sets)


def ort_library() -> str:
    import onnxruntime

    capi = pathlib.Path(onnxruntime.__file__).parent / "capi"
    libs = sorted(capi.glob("libonnxruntime.so.*"))
    assert libs, f"no libonnxruntime.so.* in {capi}"
    return str(libs[0])


@pytest.mark.parametrize("kind", ["detector", "forecaster"])
def test_train_export_parity_and_rust_replay(sim: pathlib.Path, kind: str, tmp_path) -> None:
    ds = Dataset(sim / "ds")
    out = tmp_path / kind
    summary = train_and_export(_cfg(kind, out, sim / "ds"), ds, log=lambda _m: None)
    assert summary["samples_train"] > 10
    assert np.isfinite(summary["final"][f"train_{'nll' if kind == 'detector' else 'pinball'}"])
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["kind"] == kind and manifest["opset"] >= 17
    assert manifest["node_features"] == ds.node_feature_names
    assert manifest["parity"]["max_share_of_tolerance"] <= 1.0
    names = [i["name"] for i in manifest["inputs"]]
    assert names[:5] == ["node_features", "node_mask", "edge_index", "edge_weight", "edge_features"]
    assert (names[5:] == ["window_start"]) == (kind == "forecaster")
    parity = json.loads((out / "parity.json").read_text())
    cases = {c["name"]: c for c in parity["cases"]}
    assert any(n.startswith("real-") for n in cases)
    assert cases["random-1-n1-e0"]["inputs"]["edge_index"]["shape"] == [2, 0]
    assert (out / "MODEL_CARD.md").read_text().startswith(f"# Meshwatch {kind}")
    # The Rust side (shared/model through `meshwatch model check`) replays the vectors with ort.
    env = {**os.environ, "ORT_DYLIB_PATH": ort_library()}
    r = subprocess.run(
        [meshwatch_bin(), "model", "check", str(out)], capture_output=True, text=True, env=env
    )
    assert r.returncode == 0, r.stderr + r.stdout
    # A tampered expected output must make the Rust replay fail.
    case = parity["cases"][0]
    first_output = next(iter(case["outputs"].values()))
    first_output["data"][0] = float(first_output["data"][0]) + 10.0
    (out / "parity.json").write_text(json.dumps(parity))
    r = subprocess.run(
        [meshwatch_bin(), "model", "check", str(out)], capture_output=True, text=True, env=env
    )
    assert r.returncode != 0
    assert "parity" in (r.stderr + r.stdout).lower()


def test_export_fails_hard_when_onnxruntime_disagrees(sim: pathlib.Path, tmp_path, monkeypatch):
    ds = Dataset(sim / "ds")
    cfg = _cfg("detector", None, sim / "ds")
    from meshwatch_training.train import build_model

    model = build_model(cfg, ds).eval()
    import meshwatch_training.export as ex

    real = ex.torch_outputs

    def skewed(m, kind, case):
        return [o + 1e-2 for o in real(m, kind, case)]

    monkeypatch.setattr(ex, "torch_outputs", skewed)
    with pytest.raises(ParityError, match="beyond atol"):
        export_model(
            model, "detector", tmp_path / "d", feature_names=ds.node_feature_names,
            edge_feature_names=ds.edge_feature_names, target_names=ds.target_names,
            feature_schema_version=1, steps=T, window_ms=30_000, variants=[],
        )  # fmt: skip
    assert not (tmp_path / "d" / "manifest.json").exists()


def test_compare_tolerance_rule() -> None:
    want = [np.array([1.0, 100.0, 0.0], dtype=np.float32)]
    ok = [np.array([1.00005, 100.09, 0.0], dtype=np.float32)]
    worst, fail = compare(ok, want, ["x"], 1e-4, 1e-3)
    assert not fail and worst == pytest.approx(0.09, rel=1e-3)
    _, fail = compare([np.array([1.0, 100.2, 0.0])], want, ["x"], 1e-4, 1e-3)
    assert fail and "1 of 3" in fail[0]
    _, fail = compare([np.array([1.0, 100.0, np.nan])], want, ["x"], 1e-4, 1e-3)
    assert fail, "NaN never passes"
    inf = [np.array([np.inf, -np.inf], dtype=np.float32)]
    assert not compare(inf, inf, ["x"], 1e-4, 1e-3)[1], "an infinity matches itself"
    assert compare(inf, [np.array([np.inf, np.inf])], ["x"], 1e-4, 1e-3)[1], "not the other one"


def test_a_max_score_is_calibrated_exported_and_replayed(sim: pathlib.Path, tmp_path) -> None:
    """``score_from = "max"``: after training each head's scale is the 0.9-quantile of its
    score over the training samples' present nodes; the model exports with them, passes its
    parity, and the Rust side replays it."""
    from meshwatch_training.data import collate

    ds = Dataset(sim / "ds")
    out = tmp_path / "max"
    cfg = _cfg("detector", out, sim / "ds")
    cfg.model.score_from = "max"
    summary = train_and_export(cfg, ds, log=lambda _m: None)
    assert summary["samples_train"] > 10
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["config"]["model"]["score_from"] == "max"
    assert manifest["parity"]["max_share_of_tolerance"] <= 1.0
    env = {**os.environ, "ORT_DYLIB_PATH": ort_library()}
    r = subprocess.run(
        [meshwatch_bin(), "model", "check", str(out)], capture_output=True, text=True, env=env
    )
    assert r.returncode == 0, r.stderr + r.stdout

    from meshwatch_training.train import train

    samples = load_samples(ds, T, "0%..60%", cfg.data.drop_traceless, anchor=T - 1).samples
    model = train(cfg, ds, samples).model
    per_head: list[list[torch.Tensor]] = [[], []]
    with torch.no_grad():
        for sample in samples:
            b = collate([sample], same_time=False)
            devs = model.deviations(*model.predict(*b.model_inputs()))
            for k, v in enumerate(model.head_scores(devs)):
                per_head[k].append(v[b.node_mask[-1] > 0])
        want = torch.stack([torch.quantile(torch.cat(h), 0.9) for h in per_head])
        assert torch.allclose(model.score_scales, want, rtol=1e-5), (model.score_scales, want)
        # the score is the larger calibrated head, the explanation that head's deviations
        b = collate(samples[:3], same_time=False)
        score, share = model(*b.model_inputs())
        devs = model.deviations(*model.predict(*b.model_inputs()))
        a, c = (h / k for h, k in zip(model.head_scores(devs), want, strict=True))
        m = b.node_mask[-1]
        assert torch.allclose(score, torch.maximum(a, c) * m, rtol=1e-5, atol=1e-6)
        assert (c > a).any() or (a > c).any()


def test_training_is_reproducible(sim: pathlib.Path) -> None:
    from meshwatch_training.train import train

    ds = Dataset(sim / "ds")
    cfg = _cfg("detector", None, sim / "ds")
    samples = load_samples(ds, T, "0%..60%").samples
    assert samples
    a = train(cfg, ds, samples).model.state_dict()
    b = train(cfg, ds, samples).model.state_dict()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_inject_marks_only_changed_present_nodes() -> None:
    names = ["kind_service", "requests_per_s", "error_ratio", "latency_p90_ms", "out_calls_per_s"]
    x = torch.tensor([[1.0, 2.0, 0.0, 3.0, 0.0]] * 40)
    mask = torch.ones(40)
    mask[:20] = 0.0
    gen = torch.Generator().manual_seed(1)
    x2, y = inject(x, mask, names, 0.5, gen)
    assert y[:20].sum() == 0, "absent nodes are never perturbed"
    assert 0 < y.sum() <= 10
    changed = (x2 != x).any(-1)
    assert torch.equal(changed, y > 0), "y = 1 exactly where a feature changed"
    assert torch.equal(x2[:, 0], x[:, 0]), "kind one-hots never change"


def test_score_loss_weights_leave_out_only_the_most_deviant_negatives() -> None:
    # 10 present nodes (two paths' deviations), one absent; nodes 0 and 1 perturbed (y = 1)
    c = torch.tensor([[9.0], [0.1], [0.2], [0.3], [0.4], [0.5], [0.6], [0.7], [0.8], [50.0], [99]])
    cp = torch.zeros_like(c)
    y = torch.tensor([1.0, 1.0] + [0.0] * 9)
    mask = torch.ones(11)
    mask[10] = 0.0
    assert torch.equal(score_loss_weights([c, cp], y, mask, 0.0), mask), "trim 0 keeps every node"
    w = score_loss_weights([c, cp], y, mask, 0.9)
    # the negatives 2..9 have totals 0.2..0.8 and 50: only node 9 is above their 0.9-quantile (15.6)
    want = torch.tensor([1.0] * 9 + [0.0, 0.0])
    assert torch.equal(w, want), w
    # a perturbed node is kept however large its deviation, an absent one never counts
    assert w[0] == 1.0 and w[10] == 0.0
    with pytest.raises(ConfigError, match="train.trim_negatives"):
        load_config(None, ["train.trim_negatives=1.0"])


def test_score_from_takes_both_or_a_conditional_path() -> None:
    assert load_config(None, ['model.score_from="conditional"']).model.score_from == "conditional"
    with pytest.raises(ConfigError, match="model.score_from 'history'"):
        load_config(None, ['model.score_from="history"'])
    with pytest.raises(ConfigError, match="needs model.conditional"):
        load_config(None, ['model.score_from="conditional"', "model.conditional=false"])


def test_config_errors_name_the_key(tmp_path) -> None:
    bad = tmp_path / "c.toml"
    bad.write_text('[model]\nkind = "detector"\ndimm = 3\n[train]\nepochs = "x"\n[nope]\n')
    with pytest.raises(ConfigError) as e:
        load_config(bad)
    msg = str(e.value)
    assert "model.dimm" in msg and "train.epochs" in msg and "[nope]" in msg
    with pytest.raises(ConfigError, match="section.key=value"):
        load_config(None, ["epochs=3"])
    with pytest.raises(ConfigError, match="model.kind"):
        load_config(None, ['model.kind="classifier"'])
    assert load_config(None, ["train.epochs=3"]).train.epochs == 3


def test_ranges() -> None:
    ws = np.arange(0, 1000, 10)
    assert parse_range("0%..50%").mask(ws).sum() == 50
    assert parse_range("50%..100%").mask(ws).sum() == 50, "100% includes the last window"
    assert parse_range("..500").mask(ws).sum() == 50
    assert parse_range("1970-01-01T00:08:20Z..").mask(ws).sum() == 50
    for bad in ("0%-50%", "10%..200%", "yesterday..", "2022-08-22T05:00:00.."):
        with pytest.raises(RangeError):
            parse_range(bad)


def test_benchmark_end_to_end(sim: pathlib.Path, tmp_path) -> None:
    out = tmp_path / "report.json"
    cmd = [
        sys.executable, "-m", "meshwatch_training", "benchmark",
        "--traces", str(sim / "raw/traces.otlp.jsonl"),
        "--metrics", str(sim / "raw/metrics.otlp.jsonl"),
        "--labels", str(sim / "raw/labels.jsonl"), "--format", "otlp",
        "--train-range", "0%..60%", "--test-range", "60%..100%", "--window", "30s",
        "--steps", str(T), "--horizon", str(H), "--out", str(out),
        "--set", "train.epochs=1", "--set", "model.dim=16", "--meshwatch", meshwatch_bin(),
    ]  # fmt: skip
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    report = json.loads(out.read_text())
    g = report["graphs"]["onlineboutique"]
    assert g["faults_in_test_range"] == 1 and g["overlap_windows"] == 0
    methods = set(g["detection"])
    assert {"detector", "ablation_no_graph", "ablation_no_transformer", "ablation_no_fusion",
            "ablation_no_edge_features", "zscore_latency", "zscore_resources", "zscore_gap",
            "zscore_combined", "isolation_forest", "autoencoder_mlp",
            "autoencoder_gru"} <= methods  # fmt: skip
    for m, res in g["detection"].items():
        assert res["node_window"]["positives"] > 0, m
        assert 0.0 <= res["node_window"]["auroc"] <= 1.0, m
    assert {"forecaster", "gru_only", "gcn_only", "last_value", "ets"} <= set(g["forecast"])
    mae = g["forecast"]["last_value"]["metrics"]["request_rate"]["1"]["mae"]
    assert mae is not None and mae >= 0
    # every method is scored on the same cells
    for key in ("metrics", "metrics_fault_free"):
        for tg, by_h in g["forecast"]["forecaster"][key].items():
            for hh in by_h:
                counts = {m: g["forecast"][m][key][tg][hh]["count"] for m in
                          ("forecaster", "gru_only", "gcn_only", "last_value", "ets")}  # fmt: skip
                assert len(set(counts.values())) == 1, (key, tg, hh, counts)
    # the same forecasts scored again on the windows outside the labelled fault: fewer cells
    every = g["forecast"]["forecaster"]["metrics"]["request_rate"]["1"]["count"]
    clean = g["forecast"]["forecaster"]["metrics_fault_free"]["request_rate"]["1"]["count"]
    assert 0 < clean < every
    md = out.with_suffix(".md").read_text()
    assert "| AUPRC |" in md and "Detector beats every other method on AUPRC" in md
    assert "origin and target windows outside every labelled fault" in md
    # bad input: a range that parses but selects nothing fails with a clear message
    bad = [*cmd]
    bad[bad.index("--test-range") + 1] = "..0"
    r = subprocess.run(bad, capture_output=True, text=True)
    assert r.returncode == 2 and "holds no window with spans" in r.stderr

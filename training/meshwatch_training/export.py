"""Export to ONNX under the contract of ARCHITECTURE.md §5, with parity against ONNX Runtime.

``export_model`` writes a model directory (docs/model-artifacts.md):

    model.onnx          opset ≥ 17; inputs node_features [T,N,F], node_mask [T,N],
                        edge_index i64 [2,E], edge_weight [T,E], edge_features [T,E,Fe]
                        (+ window_start i64 [T] for the forecaster); dynamic T, N, E
    manifest.json       names, shapes, dtypes, axes, opset, feature schema, T, H, sha256, training
                        data and metrics, code revision, variants
    parity.json         inputs and PyTorch's outputs (random graphs of several sizes, with E = 0
                        and N = 1 among them, and real samples); ONNX Runtime must reproduce them
                        within |ort − torch| ≤ atol + rtol·|torch| or the export fails
    model.int8.onnx     (variant) dynamic INT8 quantisation of the MatMul/Gemm weights
    parity.<v>.json     the variant's own outputs on the same inputs (for the Rust replay)
    MODEL_CARD.md

A variant is measured against the FP32 model on the parity inputs (size, latency, output error,
rank agreement of the scores or forecasts) and marked ``shipped`` only when its outputs stay within
the variant tolerance and it is clearly smaller or faster (``VARIANT_RULES``); otherwise its file
is removed and the manifest keeps the measurement. No FP16 variant: ONNX Runtime's CPU
ScatterElements has no FP16 add-reduction, and onnxruntime's FP16 converter produces an invalid
graph when that op is kept in FP32.
"""

from __future__ import annotations

import datetime
import hashlib
import inspect
import json
import math
import pathlib
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from . import __version__
from .data import Sample, collate

DETECTOR_OUTPUTS = ("anomaly_score", "feature_contribution")
FORECASTER_OUTPUTS = ("forecast", "forecast_interval")
INPUTS = ("node_features", "node_mask", "edge_index", "edge_weight", "edge_features")
AXES = {
    "node_features": {0: "T", 1: "N"},
    "node_mask": {0: "T", 1: "N"},
    "edge_index": {1: "E"},
    "edge_weight": {0: "T", 1: "E"},
    "edge_features": {0: "T", 1: "E"},
    "window_start": {0: "T"},
    "anomaly_score": {0: "N"},
    "feature_contribution": {0: "N"},
    "forecast": {1: "N"},
    "forecast_interval": {1: "N"},
}
# A variant ships when, on the parity inputs, its largest output error relative to the spread of
# the FP32 outputs stays below `rel_error` and the ranking of nodes by the primary output agrees
# (Spearman) at least `rank`, and it is at most `size_ratio` of the FP32 size or at most
# `latency_ratio` of its latency.
VARIANT_RULES = {"rel_error": 0.05, "rank": 0.98, "size_ratio": 0.75, "latency_ratio": 0.9}


class ParityError(RuntimeError):
    """ONNX Runtime and PyTorch disagree beyond the tolerance."""


@dataclass
class ExportInfo:
    directory: pathlib.Path
    manifest: dict[str, Any]


def _names(kind: str) -> tuple[list[str], list[str]]:
    if kind == "detector":
        return list(INPUTS), list(DETECTOR_OUTPUTS)
    return [*INPUTS, "window_start"], list(FORECASTER_OUTPUTS)


def random_case(
    t: int, n: int, e: int, f: int, fe: int, seed: int, window_s: int
) -> dict[str, np.ndarray]:
    """Contract inputs of a random graph (features ~ the scale of real log1p features)."""
    rng = np.random.default_rng(seed)
    mask = (rng.random((t, n)) < 0.85).astype(np.float32)
    mask[-1, :] = 1.0
    x = (np.abs(rng.normal(size=(t, n, f))) * 2.0).astype(np.float32) * mask[..., None]
    ei = rng.integers(0, n, size=(2, e)).astype(np.int64)
    w = (rng.random((t, e)) < 0.8).astype(np.float32)
    ef = (np.abs(rng.normal(size=(t, e, fe))) * 2.0).astype(np.float32) * w[..., None]
    ws = (1_700_000_000 + window_s * np.arange(t)).astype(np.int64)
    return {
        "node_features": x,
        "node_mask": mask,
        "edge_index": ei,
        "edge_weight": w,
        "edge_features": ef,
        "window_start": ws,
    }


def sample_case(s: Sample, t: int) -> dict[str, np.ndarray]:
    """Contract inputs of the first ``t`` windows of a real sample."""
    b = collate([s])
    return {
        "node_features": b.node_features[:t].numpy(),
        "node_mask": b.node_mask[:t].numpy(),
        "edge_index": b.edge_index.numpy(),
        "edge_weight": b.edge_weight[:t].numpy(),
        "edge_features": b.edge_features[:t].numpy(),
        "window_start": b.window_start[:t].numpy(),
    }


def torch_outputs(model: torch.nn.Module, kind: str, case: dict[str, np.ndarray]):
    names, _ = _names(kind)
    with torch.no_grad():
        out = model(*(torch.from_numpy(np.ascontiguousarray(case[k])) for k in names))
    return [o.numpy() for o in out]


def export_onnx(model: torch.nn.Module, kind: str, path: pathlib.Path, case, opset: int) -> None:
    names, outputs = _names(kind)
    args = tuple(torch.from_numpy(np.ascontiguousarray(case[k])) for k in names)
    extra: dict[str, Any] = {}
    if "dynamo" in inspect.signature(torch.onnx.export).parameters:
        extra["dynamo"] = False  # PyTorch ≥ 2.9 defaults to the dynamo exporter; keep TorchScript's
    torch.onnx.export(
        model.eval(),
        args,
        str(path),
        opset_version=opset,
        input_names=names,
        output_names=outputs,
        dynamic_axes={k: AXES[k] for k in [*names, *outputs]},
        do_constant_folding=True,
        **extra,
    )
    import onnx

    onnx.checker.check_model(onnx.load(str(path)), full_check=True)


def ort_session(path: pathlib.Path):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def ort_outputs(sess, kind: str, case: dict[str, np.ndarray]) -> list[np.ndarray]:
    names, outputs = _names(kind)
    return sess.run(outputs, {k: case[k] for k in names})


def _errors(g: np.ndarray, w: np.ndarray, atol: float, rtol: float):
    """(|g − w|, atol + rtol·|w|) elementwise in f64; equal infinities have error 0 and an
    infinite expectation adds no relative tolerance (an infinity matches only itself)."""
    g64, w64 = g.astype(np.float64), w.astype(np.float64)
    same_inf = np.isinf(g64) & (g64 == w64)
    err = np.where(same_inf, 0.0, np.abs(g64 - w64))
    tol = atol + rtol * np.where(np.isfinite(w64), np.abs(w64), 0.0)
    return err, tol


def compare(
    got: Sequence[np.ndarray], want: Sequence[np.ndarray], names: Sequence[str], atol, rtol
) -> tuple[float, list[str]]:
    """(largest |got − want|, failures) under |got − want| ≤ atol + rtol·|want| (NaN fails)."""
    worst, failures = 0.0, []
    for name, g, w in zip(names, got, want, strict=True):
        if g.shape != w.shape:
            failures.append(f"{name}: shape {g.shape} != {w.shape}")
            continue
        if g.size == 0:
            continue
        err, tol = _errors(g, w, atol, rtol)
        bad = ~(err <= tol)
        worst = max(worst, float(np.nanmax(err)) if np.isfinite(err).any() else math.inf)
        if bad.any():
            i = np.unravel_index(
                int(np.argmax(np.where(bad, np.nan_to_num(err, nan=1e30), -1))), bad.shape
            )
            failures.append(
                f"{name}: {int(bad.sum())} of {bad.size} elements beyond tolerance, e.g. at "
                f"{tuple(int(v) for v in i)}: onnxruntime {g[i]!r} vs torch {w[i]!r}"
            )
    return worst, failures


def tolerance_used(
    got: Sequence[np.ndarray], want: Sequence[np.ndarray], atol: float, rtol: float
) -> float:
    """Largest |got − want| / (atol + rtol·|want|) over all elements."""
    worst = 0.0
    for g, w in zip(got, want, strict=True):
        if g.size:
            err, tol = _errors(g, w, atol, rtol)
            worst = max(worst, float(np.max(err / tol)))
    return worst


def _tensor_json(a: np.ndarray) -> dict[str, Any]:
    dtype = "int64" if a.dtype == np.int64 else "float32"
    data = a.astype(np.int64 if dtype == "int64" else np.float32).ravel().tolist()
    return {"dtype": dtype, "shape": list(a.shape), "data": data}


def _sha256(path: pathlib.Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def code_revision() -> str:
    root = pathlib.Path(__file__).resolve().parents[2]
    try:
        rev = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--", "training"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return rev + ("-dirty" if dirty else "")


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.ravel(), b.ravel()
    if a.size < 2:
        return 1.0
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    if ra.std() == 0 or rb.std() == 0:
        return 1.0 if np.array_equal(ra, rb) else 0.0
    return float(np.corrcoef(ra, rb)[0, 1])


def _latency_ms(sess, kind: str, case: dict[str, np.ndarray], runs: int = 30) -> float:
    for _ in range(3):
        ort_outputs(sess, kind, case)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        ort_outputs(sess, kind, case)
        times.append((time.perf_counter() - t0) * 1000.0)
    return float(np.median(times))


def make_variant(src: pathlib.Path, name: str, dst: pathlib.Path) -> None:
    if name == "int8":
        from onnxruntime.quantization import QuantType, quantize_dynamic

        quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8)
    else:
        raise ValueError(f"unknown variant {name!r}")


WEIGHTS_FILE = "weights.npz"


def write_weights(model: torch.nn.Module, path: pathlib.Path) -> None:
    """The model's state dict as a numpy ``.npz`` (no pickle): what re-exports and the PyTorch
    latency reference (``latency.py``) load by name."""
    state = {k: v.detach().cpu().numpy() for k, v in model.state_dict().items()}
    with path.open("wb") as f:
        np.savez(f, **state)


def export_model(
    model: torch.nn.Module,
    kind: str,
    out: str | pathlib.Path,
    *,
    feature_names: Sequence[str],
    edge_feature_names: Sequence[str],
    target_names: Sequence[str],
    feature_schema_version: int,
    steps: int,
    window_ms: int,
    horizon: int | None = None,
    real_samples: Sequence[Sample] = (),
    opset: int = 17,
    atol: float = 1e-4,
    rtol: float = 1e-3,
    random_cases: int = 3,
    variants: Sequence[str] = ("int8",),
    training: dict[str, Any] | None = None,
    metrics: dict[str, Any] | None = None,
    config: dict[str, Any] | None = None,
    extra_cases: Sequence[tuple[str, dict[str, np.ndarray]]] = (),
    provenance: dict[str, Any] | None = None,
) -> ExportInfo:
    """Export, check, prove parity, write the artifact directory; raise ParityError on mismatch.

    ``extra_cases`` are more parity cases (name, inputs), e.g. the real graphs of an earlier
    export; ``provenance`` is recorded in the manifest (``reexported_from``).
    """
    if opset < 17:
        raise ValueError(f"opset {opset} < 17 (the contract's minimum)")
    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model = model.eval().cpu()
    f, fe = len(feature_names), len(edge_feature_names)
    window_s = max(1, window_ms // 1000)
    shapes = [(steps, 7, 12), (steps, 1, 0), (steps, 23, 40)][: max(1, random_cases)]
    shapes += [(steps, 5 + 4 * k, 3 * k) for k in range(3, random_cases)]
    cases = [
        (f"random-{k}-n{n}-e{e}", random_case(t, n, e, f, fe, 100 + k, window_s))
        for k, (t, n, e) in enumerate(shapes)
    ]
    for k, s in enumerate(list(real_samples)[:2]):
        if s.node_mask.shape[0] >= steps:
            cases.append((f"real-{k}-{s.graph}", sample_case(s, steps)))
    cases += [(name, case) for name, case in extra_cases]
    names, outputs = _names(kind)
    onnx_path = out / "model.onnx"
    export_onnx(model, kind, onnx_path, cases[0][1], opset)
    weights_path = out / WEIGHTS_FILE
    write_weights(model, weights_path)
    sess = ort_session(onnx_path)
    parity_cases, failures, worst, used = [], [], 0.0, 0.0
    expected_all = []
    for name, case in cases:
        want = torch_outputs(model, kind, case)
        got = ort_outputs(sess, kind, case)
        w, fail = compare(got, want, outputs, atol, rtol)
        worst = max(worst, w)
        used = max(used, tolerance_used(got, want, atol, rtol))
        failures += [f"{name}: {x}" for x in fail]
        expected_all.append(want)
        parity_cases.append(
            {
                "name": name,
                "inputs": {k: _tensor_json(case[k]) for k in names},
                "outputs": {k: _tensor_json(v) for k, v in zip(outputs, want, strict=True)},
            }
        )
    if failures:
        raise ParityError(
            f"ONNX Runtime differs from PyTorch beyond atol={atol}, rtol={rtol}:\n"
            + "\n".join(failures)
        )
    (out / "parity.json").write_text(
        json.dumps({"atol": atol, "rtol": rtol, "cases": parity_cases}, separators=(",", ":"))
    )
    base_case = cases[-1][1]  # the largest real (or random) graph
    base_latency = _latency_ms(sess, kind, base_case)
    variant_entries = []
    for v in variants:
        path = out / f"model.{v}.onnx"
        try:
            make_variant(onnx_path, v, path)
            vs = ort_session(path)
            v_outputs = [ort_outputs(vs, kind, case) for _, case in cases]
        except Exception as e:  # a variant that cannot be built or run is reported, not shipped
            path.unlink(missing_ok=True)
            variant_entries.append(
                {"name": v, "file": None, "shipped": False, "error": f"{type(e).__name__}: {e}"}
            )
            continue
        rel, ranks, v_cases = 0.0, [], []
        for (name, case), want, got in zip(cases, expected_all, v_outputs, strict=True):
            primary = want[0]
            spread = float(np.std(primary)) or 1.0
            rel = max(rel, float(np.max(np.abs(got[0] - primary), initial=0.0)) / spread)
            ranks.append(_spearman(got[0], primary))
            v_cases.append(
                {
                    "name": name,
                    "inputs": {k: _tensor_json(case[k]) for k in names},
                    "outputs": {k: _tensor_json(x) for k, x in zip(outputs, got, strict=True)},
                }
            )
        v_atol, v_rtol = 1e-5, 1e-4  # the same runtime on the same file: near bit-exact
        (out / f"parity.{v}.json").write_text(
            json.dumps({"atol": v_atol, "rtol": v_rtol, "cases": v_cases}, separators=(",", ":"))
        )
        latency = _latency_ms(vs, kind, base_case)
        size, base_size = path.stat().st_size, onnx_path.stat().st_size
        holds = rel <= VARIANT_RULES["rel_error"] and min(ranks) >= VARIANT_RULES["rank"]
        variant_entries.append(
            {
                "name": v,
                "file": path.name,
                "sha256": _sha256(path),
                "size_bytes": size,
                "size_ratio": size / base_size,
                "latency_ms": latency,
                "fp32_latency_ms": base_latency,
                "max_error_over_output_std": rel,
                "min_rank_agreement": min(ranks),
                "shipped": bool(
                    holds
                    and (
                        size <= VARIANT_RULES["size_ratio"] * base_size
                        or latency <= VARIANT_RULES["latency_ratio"] * base_latency
                    )
                ),
                "rule": VARIANT_RULES,
                "parity": {"file": f"parity.{v}.json", "atol": v_atol, "rtol": v_rtol},
            }
        )
        if not variant_entries[-1]["shipped"]:
            path.unlink()
            (out / f"parity.{v}.json").unlink()
            variant_entries[-1]["file"] = None
            variant_entries[-1]["parity"] = None
    dims = {
        "node_features": ["T", "N", f],
        "node_mask": ["T", "N"],
        "edge_index": [2, "E"],
        "edge_weight": ["T", "E"],
        "edge_features": ["T", "E", fe],
        "window_start": ["T"],
    }
    m = len(target_names)
    out_dims = {
        "anomaly_score": ["N"],
        "feature_contribution": ["N", f],
        "forecast": [horizon, "N", m],
        "forecast_interval": [horizon, "N", m, 2],
    }
    manifest = {
        "format": "meshwatch.model",
        "format_version": 1,
        "name": kind,
        "kind": kind,
        "opset": opset,
        "feature_schema_version": feature_schema_version,
        "node_features": list(feature_names),
        "edge_features": list(edge_feature_names),
        "targets": list(target_names),
        "steps": steps,
        "horizon": horizon if kind == "forecaster" else None,
        "window_ms": window_ms,
        "inputs": [
            {
                "name": k,
                "dtype": "int64" if k in ("edge_index", "window_start") else "float32",
                "shape": dims[k],
            }
            for k in names
        ],
        "outputs": [{"name": k, "dtype": "float32", "shape": out_dims[k]} for k in outputs],
        "dynamic_axes": {k: {str(a): v for a, v in AXES[k].items()} for k in [*names, *outputs]},
        "sha256": _sha256(onnx_path),
        "size_bytes": onnx_path.stat().st_size,
        "parity": {
            "file": "parity.json",
            "atol": atol,
            "rtol": rtol,
            "cases": [c["name"] for c in parity_cases],
            "max_abs_error_onnxruntime": worst,
            "max_share_of_tolerance": used,
            "onnxruntime_latency_ms": base_latency,
        },
        "variants": variant_entries,
        "weights": {
            "file": WEIGHTS_FILE,
            "format": "numpy npz: the PyTorch state dict, by parameter name",
            "sha256": _sha256(weights_path),
        },
        "training": training or {},
        "metrics": metrics or {},
        "config": config or {},
        "code_revision": code_revision(),
        "producer": f"meshwatch-training {__version__} (torch {torch.__version__})",
        "created": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    if provenance:
        manifest["reexported_from"] = provenance
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return ExportInfo(out, manifest)

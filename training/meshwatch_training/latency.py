"""``python -m meshwatch_training latency``: PyTorch eager latency of a shipped model, the
reference column of ``meshwatch bench inference`` (issue 5, docs/benchmarks.md).

The model is rebuilt from the artifact's manifest (``config.model``, the feature names, T, the
window length) with the package's own classes (``train.build_model``), so PyTorch runs the same
architecture ONNX Runtime runs. Its weights come from the artifact's ``weights.npz`` (the state
dict by name, written by every export since the ScatterND change), else from the ONNX file's
initializers:

1. by name: every parameter of the state dict has an initializer of the same name and shape;
2. else by position: ``torch.onnx.export`` renames the weights it folds (a ``Linear`` applied
   to a 3-D input becomes ``onnx::MatMul_<k>`` holding the transposed weight; a GRU's weights are
   split, reordered by gate and stacked). The rebuilt model is exported once more, with every
   parameter element set to its own index (``BASE + k``, exact in float32), under the manifest's
   opset and the contract's dynamic axes; when the two graphs have the same operators in the
   same order, the initializer in a given (node, input) slot of the fresh export tells, element
   by element, which parameter element the shipped initializer in the same slot holds.

When neither covers every parameter element (another exporter, another model code), the model
keeps seeded random weights and says so (``"weights": "random"``): the latency of these models
does not depend on the weight values (no data-dependent control flow), only the outputs do.
``tests/test_latency.py`` proves that ``"onnx"`` weights reproduce ONNX Runtime on the committed
models.

Timing: ``torch.set_num_threads(threads)``, eval mode, ``torch.inference_mode()``, ``warmup``
untimed runs, then each run timed with ``time.perf_counter`` (after ``torch.cuda.synchronize()``
on CUDA). A timed run does the service's work: the inputs move from host memory to the device
and the outputs back (on the CPU that costs nothing). On a GPU the model is also timed alone,
its inputs already on the device, as PyTorch benchmarks usually are (``resident_*``; null on the
CPU). Percentiles are nearest-rank: the p-th percentile of n sorted times is the ⌈p·n/100⌉-th,
as the Rust side computes them. Prints one JSON line: ``{"p50_ms", "p99_ms", "mean_ms", "runs",
"resident_p50_ms", "resident_p99_ms", "weights", "weights_note", "torch", "device",
"threads"}``.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import pathlib
import time
import warnings
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import torch

from .config import Config, ConfigError, _apply, validate
from .data import Dataset
from .export import AXES, _names
from .train import build_model

BASE = 1_000_000.0  # first parameter index in the mapping export (exact in float32 below 2^24)


class LatencyError(RuntimeError):
    """The artifact or the inputs cannot be used; the message says why."""


@dataclass
class ArtifactSchema:
    """What ``train.build_model`` reads of a dataset, taken from an artifact's manifest."""

    node_feature_names: list[str]
    edge_feature_names: list[str]
    manifest: dict[str, Any]


def load_manifest(artifact: pathlib.Path) -> dict[str, Any]:
    path = artifact / "manifest.json"
    try:
        manifest = json.loads(path.read_text())
    except OSError as e:
        raise LatencyError(f"{path}: {e.strerror}") from e
    except json.JSONDecodeError as e:
        raise LatencyError(f"{path}: invalid JSON: {e}") from e
    for key in ("kind", "node_features", "edge_features", "steps", "window_ms", "config"):
        if key not in manifest:
            raise LatencyError(f"{path}: no {key!r}")
    return manifest


def rebuild(manifest: dict[str, Any], seed: int = 0) -> torch.nn.Module:
    """The manifest's model (``config.model``) with seeded random weights, in eval mode."""
    cfg = Config()
    try:
        _apply(cfg, {"model": manifest["config"].get("model", {})}, "manifest config")
        cfg.data.steps = int(manifest["steps"])
        validate(cfg)
    except ConfigError as e:
        raise LatencyError(str(e)) from e
    if cfg.model.kind != manifest["kind"]:
        raise LatencyError(f"config.model.kind {cfg.model.kind!r} != kind {manifest['kind']!r}")
    schema = ArtifactSchema(
        list(manifest["node_features"]), list(manifest["edge_features"]), manifest
    )
    torch.manual_seed(seed)
    # build_model reads only the feature names and manifest["window_ms"] of its dataset
    return build_model(cfg, cast(Dataset, schema)).eval()


def _initializers(graph) -> dict[str, np.ndarray]:
    from onnx import numpy_helper

    return {i.name: numpy_helper.to_array(i) for i in graph.initializer}


def _slots(graph) -> dict[str, tuple[int, int]]:
    """Initializer name -> (node, input) of its first use."""
    names = {i.name for i in graph.initializer}
    out: dict[str, tuple[int, int]] = {}
    for k, node in enumerate(graph.node):
        for j, name in enumerate(node.input):
            if name in names and name not in out:
                out[name] = (k, j)
    return out


def _by_name(model: torch.nn.Module, shipped: dict[str, np.ndarray]) -> bool:
    params = dict(model.named_parameters())
    if not all(
        n in shipped and tuple(shipped[n].shape) == tuple(p.shape) for n, p in params.items()
    ):
        return False
    with torch.no_grad():
        for n, p in params.items():
            p.copy_(torch.from_numpy(np.array(shipped[n], dtype=np.float32)))
        # buffers set by training (the detector's score scales) travel in the state dict too
        for n, b in model.named_buffers():
            if n in shipped and tuple(shipped[n].shape) == tuple(b.shape):
                b.copy_(torch.from_numpy(np.array(shipped[n])).to(b.dtype))
    return True


def _by_position(model: torch.nn.Module, manifest: dict[str, Any], shipped_graph) -> str | None:
    """Loads the weights by initializer slot (module docs); None when done, else why not."""
    import onnx

    kind = manifest["kind"]
    params = dict(model.named_parameters())
    offsets, total = {}, 0
    for n, p in params.items():
        offsets[n] = total
        total += p.numel()
    if BASE + total >= 2**24:
        return f"{total} parameters: too many to index exactly in float32"
    with torch.no_grad():
        for n, p in params.items():
            index = torch.arange(offsets[n], offsets[n] + p.numel(), dtype=torch.float64)
            p.copy_((index + BASE).view_as(p))
    names, outputs = _names(kind)
    f, fe = len(manifest["node_features"]), len(manifest["edge_features"])
    t = int(manifest["steps"])
    rng = np.random.default_rng(0)
    example = {
        "node_features": rng.random((t, 7, f), dtype=np.float32),
        "node_mask": np.ones((t, 7), dtype=np.float32),
        "edge_index": rng.integers(0, 7, size=(2, 12)).astype(np.int64),
        "edge_weight": np.ones((t, 12), dtype=np.float32),
        "edge_features": rng.random((t, 12, fe), dtype=np.float32),
        "window_start": 1_700_000_000 + 10 * np.arange(t, dtype=np.int64),
    }
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's shape-inference chatter
        torch.onnx.export(
            model,
            tuple(torch.from_numpy(example[k]) for k in names),
            buffer,
            opset_version=int(manifest.get("opset", 17)),
            input_names=names,
            output_names=outputs,
            dynamic_axes={k: AXES[k] for k in [*names, *outputs]},
            do_constant_folding=True,
        )
    fresh = onnx.load_from_string(buffer.getvalue()).graph
    fresh_ops = [n.op_type for n in fresh.node]
    shipped_ops = [n.op_type for n in shipped_graph.node]
    if fresh_ops != shipped_ops:
        return (
            f"the rebuilt model exports to another graph ({len(fresh_ops)} nodes vs "
            f"{len(shipped_ops)} shipped)"
        )
    shipped_by_slot = {slot: name for name, slot in _slots(shipped_graph).items()}
    fresh_slots = _slots(fresh)
    shipped = _initializers(shipped_graph)
    flat = np.full(total, np.nan, dtype=np.float32)
    for name, values in _initializers(fresh).items():
        if values.dtype != np.float32 or values.size == 0:
            continue
        index = values.astype(np.float64) - BASE
        if not (np.all(index == np.round(index)) and index.min() >= 0 and index.max() < total):
            continue  # a buffer or a constant, not a parameter
        source = shipped_by_slot.get(fresh_slots.get(name, (-1, -1)))
        if source is None or shipped[source].shape != values.shape:
            return f"initializer {name} has no counterpart of shape {values.shape}"
        flat[index.astype(np.int64).ravel()] = shipped[source].ravel()
    values_of = {n: flat[offsets[n] : offsets[n] + p.numel()] for n, p in params.items()}
    missing = [n for n, v in values_of.items() if np.isnan(v).any()]
    if missing:
        more = " ..." if len(missing) > 3 else ""
        return f"no initializer holds {', '.join(missing[:3])}{more}"
    with torch.no_grad():
        for n, p in params.items():
            p.copy_(torch.from_numpy(values_of[n]).view_as(p))
    return None


def load_weights(model: torch.nn.Module, artifact: pathlib.Path, manifest: dict[str, Any]) -> str:
    """Loads the weights of ``artifact/model.onnx`` into ``model`` (module docs): a note on how,
    or raises LatencyError (the model then keeps whatever weights it had)."""
    npz = artifact / str(manifest.get("weights", {}).get("file", "weights.npz"))
    if npz.is_file():
        try:
            with np.load(npz, allow_pickle=False) as stored:
                state = {k: stored[k] for k in stored.files}
        except (OSError, ValueError) as e:
            raise LatencyError(f"{npz}: {e}") from e
        if _by_name(model, state):
            return f"the artifact's {npz.name}, by name"
        raise LatencyError(f"{npz} does not fit the rebuilt model")
    try:
        import onnx
    except ImportError as e:
        raise LatencyError("onnx is not installed") from e
    path = artifact / "model.onnx"
    try:
        graph = onnx.load(str(path)).graph
    except Exception as e:  # a missing, truncated or foreign file: onnx raises several types
        raise LatencyError(f"{path}: {e}") from e
    if _by_name(model, _initializers(graph)):
        return "initializers by name"
    seeded = {n: p.detach().clone() for n, p in model.named_parameters()}
    why = _by_position(model, manifest, graph)
    if why is not None:
        with torch.no_grad():
            for n, p in model.named_parameters():
                p.copy_(seeded[n])
        raise LatencyError(why)
    return "initializers matched by their place in the graph: the exporter renamed them"


def model_with_weights(artifact: pathlib.Path) -> tuple[torch.nn.Module, dict[str, Any], str, str]:
    """(model, manifest, "onnx" | "random", note)."""
    manifest = load_manifest(artifact)
    model = rebuild(manifest)
    try:
        note = load_weights(model, artifact, manifest)
    except LatencyError as e:
        return model, manifest, "random", f"seeded random weights: {e}"
    return model.eval(), manifest, "onnx", note


def read_inputs(path: pathlib.Path, kind: str) -> dict[str, np.ndarray]:
    names, _ = _names(kind)
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = [k for k in names if k not in npz.files]
            if missing:
                raise LatencyError(f"{path}: no {', '.join(missing)}")
            return {k: np.ascontiguousarray(npz[k]) for k in names}
    except OSError as e:
        raise LatencyError(f"{path}: {e}") from e


def percentile(sorted_ms: list[float], p: float) -> float:
    """Nearest-rank percentile of ascending values: the ⌈p·n/100⌉-th (1-based)."""
    if not sorted_ms:
        return math.nan
    rank = max(1, math.ceil(p / 100.0 * len(sorted_ms)))
    return sorted_ms[min(rank, len(sorted_ms)) - 1]


def measure(
    model: torch.nn.Module,
    kind: str,
    inputs: dict[str, np.ndarray],
    *,
    warmup: int,
    iterations: int,
    min_time_s: float = 0.0,
    device: str = "cpu",
    copies: bool = False,
) -> list[float]:
    """Times of the timed runs, ms: ``iterations`` runs, or with ``min_time_s`` > 0 runs until
    that much time has passed (at least 3).

    With ``copies`` each timed run also moves the inputs from host memory to ``device`` and the
    outputs back, as the service's run does; without, the inputs stay on the device and the
    outputs are left there (a no-op difference on the CPU)."""
    names, _ = _names(kind)
    dev = torch.device(device)
    model = model.to(dev).eval()
    host = tuple(torch.from_numpy(inputs[k]) for k in names)
    resident = tuple(x.to(dev) for x in host)
    cuda = dev.type == "cuda"
    no_grad = getattr(torch, "inference_mode", torch.no_grad)

    def once() -> None:
        if not copies:
            model(*resident)
            return
        out = model(*(x.to(dev) for x in host))
        for y in out if isinstance(out, tuple | list) else (out,):
            y.cpu()

    times: list[float] = []
    with no_grad():
        for _ in range(warmup):
            once()
        if cuda:
            torch.cuda.synchronize(dev)
        started = time.perf_counter()
        while True:
            t0 = time.perf_counter()
            once()
            if cuda:
                torch.cuda.synchronize(dev)
            times.append((time.perf_counter() - t0) * 1000.0)
            if min_time_s > 0:
                if time.perf_counter() - started >= min_time_s and len(times) >= 3:
                    break
            elif len(times) >= iterations:
                break
    return times


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--artifact", required=True, help="model directory (models/detector)")
    p.add_argument("--inputs", required=True, help=".npz with the contract inputs")
    p.add_argument("--threads", type=int, default=1, help="torch.set_num_threads")
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--iterations", type=int, default=50)
    p.add_argument("--min-time", type=float, default=0.0, help="seconds; overrides --iterations")
    p.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N")


def run_latency(args: argparse.Namespace) -> dict[str, Any]:
    if args.threads < 1 or args.warmup < 0 or args.iterations < 1:
        raise LatencyError("--threads and --iterations must be ≥ 1, --warmup ≥ 0")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise LatencyError(f"--device {args.device}: CUDA is not available to PyTorch")
    torch.set_num_threads(args.threads)
    model, manifest, weights, note = model_with_weights(pathlib.Path(args.artifact))
    inputs = read_inputs(pathlib.Path(args.inputs), manifest["kind"])

    def timed(copies: bool) -> list[float]:
        return measure(
            model,
            manifest["kind"],
            inputs,
            warmup=args.warmup,
            iterations=args.iterations,
            min_time_s=args.min_time,
            device=args.device,
            copies=copies,
        )

    # the service's work: inputs from host memory, outputs back to it
    times = timed(copies=True)
    ordered = sorted(times)
    # on a GPU also the model alone, its inputs already there (the usual PyTorch benchmark)
    resident = sorted(timed(copies=False)) if torch.device(args.device).type != "cpu" else None
    return {
        "p50_ms": percentile(ordered, 50),
        "p99_ms": percentile(ordered, 99),
        "mean_ms": float(np.mean(times)),
        "runs": len(times),
        "resident_p50_ms": None if resident is None else percentile(resident, 50),
        "resident_p99_ms": None if resident is None else percentile(resident, 99),
        "weights": weights,
        "weights_note": note,
        "torch": torch.__version__,
        "device": str(torch.device(args.device)),
        "threads": torch.get_num_threads(),
    }

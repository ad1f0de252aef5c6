"""``python -m meshwatch_training reexport``: a shipped artifact exported again by the current
code, with the same weights — for exporter changes that do not change what the model computes
(e.g. message passing written as ONNX ScatterND instead of ScatterElements).

1. The model is rebuilt from the artifact's manifest and given the artifact's weights
   (``weights.npz``, ``--weights FILE.npz``, or recovered from the ONNX initializers:
   ``latency.load_weights``); recovered weights must reproduce the artifact's own parity vectors
   through PyTorch, else nothing is written.
2. It is exported with ``export.export_model`` (checker, ONNX Runtime parity on random graphs and
   on the artifact's real parity graphs, variants by their rule, ``weights.npz``), keeping the
   artifact's training record, metrics and config, and recording where it came from
   (``reexported_from``: the old file's sha256 and code revision).
3. The new ONNX file must give the old file's outputs on every old parity case within the
   artifact's tolerance: the same function, so evaluation reports of the old artifact hold.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import shutil
import tempfile
from typing import Any

import numpy as np
import torch

from .export import _names, compare, export_model, ort_outputs, ort_session, torch_outputs
from .latency import LatencyError, _by_name, load_manifest, load_weights, rebuild
from .modelcard import write_model_card


class ReexportError(RuntimeError):
    """The artifact cannot be re-exported faithfully."""


def _parity_cases(artifact: pathlib.Path, manifest: dict[str, Any]) -> list[dict[str, Any]]:
    path = artifact / manifest["parity"]["file"]
    try:
        return json.loads(path.read_text())["cases"]
    except (OSError, KeyError, json.JSONDecodeError) as e:
        raise ReexportError(f"{path}: {e}") from e


def _array(t: dict[str, Any]) -> np.ndarray:
    dtype = {"float32": np.float32, "int64": np.int64}[t["dtype"]]
    return np.asarray(t["data"], dtype=dtype).reshape(t["shape"])


def _inputs(case: dict[str, Any], kind: str) -> dict[str, np.ndarray]:
    names, _ = _names(kind)
    return {k: _array(case["inputs"][k]) for k in names}


def _check(
    got: list[np.ndarray], want: list[np.ndarray], outputs: list[str], atol: float, rtol: float
) -> list[str]:
    _, failures = compare(got, want, outputs, atol, rtol)
    return failures


def reexport(
    artifact: pathlib.Path, out: pathlib.Path, weights: pathlib.Path | None = None
) -> dict[str, Any]:
    manifest = load_manifest(artifact)
    kind = manifest["kind"]
    _, outputs = _names(kind)
    atol, rtol = float(manifest["parity"]["atol"]), float(manifest["parity"]["rtol"])
    model = rebuild(manifest)
    if weights is not None:
        with np.load(weights, allow_pickle=False) as stored:
            state = {k: stored[k] for k in stored.files}
        if not _by_name(model, state):
            raise ReexportError(f"{weights} does not fit the model of {artifact}")
        how = f"{weights.name}, by name"
    else:
        try:
            how = load_weights(model, artifact, manifest)
        except LatencyError as e:
            raise ReexportError(f"cannot recover the weights of {artifact}: {e}") from e
    model.eval()
    cases = _parity_cases(artifact, manifest)
    for case in cases:
        want = [_array(case["outputs"][k]) for k in outputs]
        got = torch_outputs(model, kind, _inputs(case, kind))
        failures = _check(got, want, outputs, atol, rtol)
        if failures:
            raise ReexportError(
                f"the recovered weights ({how}) do not reproduce {case['name']}: {failures[:3]}"
            )
    variants = [v["name"] for v in manifest.get("variants", [])]
    extra = [(c["name"], _inputs(c, kind)) for c in cases if c["name"].startswith("real-")]
    provenance = {
        "sha256": manifest["sha256"],
        "code_revision": manifest.get("code_revision"),
        "created": manifest.get("created"),
        "weights": how,
    }
    if earlier := manifest.get("reexported_from"):
        provenance["previous"] = earlier
    with tempfile.TemporaryDirectory() as tmp:
        staged = pathlib.Path(tmp) / "artifact"
        info = export_model(
            model,
            kind,
            staged,
            feature_names=manifest["node_features"],
            edge_feature_names=manifest["edge_features"],
            target_names=manifest["targets"],
            feature_schema_version=int(manifest["feature_schema_version"]),
            steps=int(manifest["steps"]),
            window_ms=int(manifest["window_ms"]),
            horizon=manifest.get("horizon"),
            opset=int(manifest["opset"]),
            atol=atol,
            rtol=rtol,
            variants=variants,
            training=manifest.get("training"),
            metrics=manifest.get("metrics"),
            config=manifest.get("config"),
            extra_cases=extra,
            provenance=provenance,
        )
        old = ort_session(artifact / "model.onnx")
        new = ort_session(staged / "model.onnx")
        for case in cases:
            inputs = _inputs(case, kind)
            failures = _check(
                ort_outputs(new, kind, inputs), ort_outputs(old, kind, inputs), outputs, atol, rtol
            )
            if failures:
                raise ReexportError(
                    f"the re-export computes something else on {case['name']}: {failures[:3]}"
                )
        write_model_card(staged, info.manifest)
        if out.exists():
            shutil.rmtree(out)
        shutil.copytree(staged, out)
    return {
        "artifact": str(out),
        "weights": how,
        "old_sha256": manifest["sha256"],
        "sha256": info.manifest["sha256"],
        "cases_checked": len(cases),
    }


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--artifact", required=True, type=pathlib.Path, help="artifact directory")
    p.add_argument("--out", required=True, type=pathlib.Path, help="directory to write")
    p.add_argument("--weights", type=pathlib.Path, help="state dict (.npz) to use")


def run_reexport(args: argparse.Namespace) -> dict[str, Any]:
    torch.manual_seed(0)
    return reexport(args.artifact, args.out, args.weights)

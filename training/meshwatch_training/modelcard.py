"""MODEL_CARD.md of an exported model, from its manifest (and the benchmark's metrics if any)."""

from __future__ import annotations

import pathlib
from typing import Any

OBJECTIVES = {
    "detector": (
        "Unsupervised. Two predictors minimise the Gaussian negative log-likelihood of each "
        "node's current window: one from its history (graph convolution per window, "
        "Transformer) fused by a learned gate with its callees' current state, one from its "
        "current load and its callees alone (no history). The score heads learn, on the "
        "standardised deviations of both, to tell synthetically perturbed nodes (latency "
        "shifts, error bursts, traffic changes, downstream slowness, gap growth, resource "
        "saturation, generic noise) from unperturbed ones. Fault labels are never used in "
        "training."
    ),
    "forecaster": (
        "Pinball loss at the 0.5, 0.1 and 0.9 quantiles of the next H windows' request rate, p90 "
        "and p99 latency and error ratio, on per-node normalised, transformed targets; "
        "forecast = median, forecast_interval = the 80 % interval."
    ),
}

# what the detector's score reads (config.model.score_from)
SCORE_FROM = {
    "both": "One score head reads the deviations of both predictions.",
    "conditional": "The score head reads the deviations of the history-free prediction alone.",
    "max": (
        "Two score heads, one reading the deviations of both predictions and one those of the "
        "history-free prediction alone, are each divided by their 0.9-quantile over the "
        "training node-windows; the score is the larger."
    ),
}

PAPERS = {
    "detector": "GTF-Net, arXiv 2508.09401 (graph convolution + Transformer + learned fusion)",
    "forecaster": "arXiv 2508.07122 (graph convolution + GRU + time encoding)",
}

LIMITS = {
    "detector": [
        "Trained on 10 s windows: a service running other windows should check the scores on "
        "its own traffic (or retrain) before trusting the threshold.",
        "Trained on a few hours of two benchmark systems (Nezha Online Boutique, TrainTicket); "
        "a system with different traffic shapes should be retrained on its own fault-free data.",
        "The score is relative: pick the alarm threshold on your own fault-free traffic "
        "(the benchmark uses the 99.5th percentile of the training windows' maximum score).",
        "A fault that does not change any feature of the windows (e.g. a network delay seen by "
        "no caller's spans) cannot be seen.",
        "Nodes without history in the T windows are scored against their neighbours only.",
    ],
    "forecaster": [
        "Trained on 10 s windows of a few hours of two benchmark systems.",
        "Horizons are in windows of the training data's length (manifest window_ms).",
        "Trained on short stretches: no daily or weekly season could be learned from this data; "
        "the time encoding is there for longer training data.",
        "Nodes need at least one window of history; the normalisation is per node over the T "
        "input windows, so a node that was constant forecasts its constant.",
    ],
}


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def write_model_card(directory: pathlib.Path, manifest: dict[str, Any]) -> pathlib.Path:
    kind = manifest["kind"]
    tr = manifest.get("training", {})
    ds = tr.get("dataset", {})
    lines = [
        f"# Meshwatch {kind} — model card",
        "",
        f"- Architecture: {PAPERS[kind]}; `training/meshwatch_training/models/{kind}.py` gives "
        "the equations.",
        f"- Contract: ONNX opset {manifest['opset']}, feature schema "
        f"v{manifest['feature_schema_version']}, T = {manifest['steps']} windows of "
        f"{manifest['window_ms'] / 1000:g} s"
        + (f", H = {manifest['horizon']}" if manifest.get("horizon") else "")
        + " (docs/model-artifacts.md).",
        f"- File: `model.onnx`, {manifest['size_bytes']:,} bytes, sha256 `{manifest['sha256']}`.",
        f"- Produced by {manifest['producer']} at code revision `{manifest['code_revision']}` "
        f"on {manifest['created']}.",
    ]
    if re := manifest.get("reexported_from"):
        lines.append(
            f"- Re-exported (same weights, same function) from `model.onnx` sha256 "
            f"`{re.get('sha256')}` of code revision `{re.get('code_revision')}`: weights "
            f"{re.get('weights')}; the new file gives the old file's outputs on all of its parity "
            "cases, so evaluations of the old file hold (`python -m meshwatch_training reexport`)."
        )
        while re := re.get("previous"):
            lines.append(
                f"  - which was re-exported from sha256 `{re.get('sha256')}` of code revision "
                f"`{re.get('code_revision')}` (weights {re.get('weights')})."
            )
    if w := manifest.get("weights"):
        lines.append(f"- Weights: `{w.get('file')}` ({w.get('format')}).")
    lines += [
        "",
        "## Training data",
        "",
        f"- Source: {tr.get('source') or ds.get('path')}.",
        f"- Dataset: built by {ds.get('producer')}, windows of "
        f"{_fmt((ds.get('window_ms') or 0) / 1000)} s, "
        f"{(ds.get('totals') or {}).get('spans_accepted')} spans, "
        f"{(ds.get('totals') or {}).get('points_accepted')} metric points.",
        f"- Range: `{tr.get('train_range')}`; windows without spans masked: "
        f"{tr.get('drop_traceless')}; {tr.get('samples_train')} training and "
        f"{tr.get('samples_validation')} validation samples; {tr.get('seconds')} s on "
        f"{tr.get('device')}.",
    ]
    for g in ds.get("graphs", []):
        lines.append(
            f"- Graph `{g['graph']}`: {g.get('windows_observed')} windows observed, "
            f"{g.get('faults')} labelled faults in the whole dataset (labels unused in training)."
        )
    objective = OBJECTIVES[kind]
    score_from = manifest.get("config", {}).get("model", {}).get("score_from", "both")
    if kind == "detector" and score_from in SCORE_FROM:
        objective += " " + SCORE_FROM[score_from]
    lines += ["", "## Objective", "", objective, "", "## Training metrics", ""]
    final = tr.get("final", {})
    lines.append(", ".join(f"{k} = {_fmt(v)}" for k, v in final.items()) or "none recorded")
    lines += [
        "",
        "## Export",
        "",
        f"ONNX Runtime reproduces PyTorch on {len(manifest['parity']['cases'])} parity cases "
        f"({', '.join(manifest['parity']['cases'])}) within the tolerance "
        f"{manifest['parity']['atol']} + {manifest['parity']['rtol']}·|expected|"
        + (
            f" (every element within {_fmt(share)} of its tolerance)"
            if (share := manifest["parity"].get("max_share_of_tolerance")) is not None
            else ""
        )
        + f", largest absolute error {_fmt(manifest['parity']['max_abs_error_onnxruntime'])}; "
        f"median latency {_fmt(manifest['parity']['onnxruntime_latency_ms'])} ms on one CPU "
        "thread for the last parity case.",
        "",
    ]
    for v in manifest.get("variants", []):
        if v.get("error"):
            lines.append(f"- {v['name']}: not built ({v['error']}).")
            continue
        lines.append(
            f"- {v['name']}: size ratio {_fmt(v['size_ratio'])}, "
            f"latency {_fmt(v['latency_ms'])} ms vs "
            f"{_fmt(v['fp32_latency_ms'])} ms, largest error {_fmt(v['max_error_over_output_std'])}"
            f" of the output's spread, rank agreement {_fmt(v['min_rank_agreement'])}: "
            + ("**shipped**." if v["shipped"] else "not shipped (does not hold up).")
        )
    metrics = manifest.get("metrics") or {}
    lines += ["", "## Evaluation", ""]
    lines += [f"- {k}: {_fmt(v)}" for k, v in metrics.items()]
    lines.append(
        "- The benchmark (`python -m meshwatch_training benchmark`, `scripts/benchmark-models.sh`) "
        "trains the same configuration on a train range and scores a later test range against "
        "baselines and ablations: docs/models.md and docs/reports/ give the numbers, including "
        "where this model loses."
    )
    lines += ["", "## Limits", ""] + [f"- {x}" for x in LIMITS[kind]] + [""]
    path = directory / "MODEL_CARD.md"
    path.write_text("\n".join(lines))
    return path

"""``python -m meshwatch_training benchmark``: the detector, the forecaster, their ablations and the
baselines on labelled faults, one command from raw traces to ``report.json`` and ``report.md``.

Steps (docs/models.md):
1. ``meshwatch dataset import nezha`` (``--format nezha``) turns each Nezha day into OTLP files
   and fault labels; ``--format otlp`` takes OTLP trace (and metric) files and a labels file;
2. ``meshwatch dataset build`` encodes them (the Rust feature code the services run);
3. per graph, the whole dataset is one timeline (timeline.py); the train and test ranges select
   windows with spans;
4. the detector and its ablations (no graph convolution, no Transformer, no fusion, no edge
   features) train on the train range without labels, the baselines fit on the same windows, and
   all score every window; the alarm threshold of each method is the 99.5th percentile of its
   per-window maximum score on the training windows (the same unsupervised rule for all);
5. on the test range: node-window AUROC / AUPRC / best F1 (and point-adjusted F1, labelled),
   per-fault detection, delay and false alarms per hour, and root-cause AC@k / Avg@5 by score and
   by personalised PageRank (evaluate/);
6. the forecaster, GRU-only and GCN-only train on the train range; with last value, seasonal
   naive and Holt-Winters they forecast H windows from every test window with spans; MAE, RMSE,
   R², sMAPE per target and horizon on the original scale, every method on the same cells, and
   again on the cells whose origin and target windows lie outside every labelled fault.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import pathlib
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import torch

from .config import Config, copy_config, load_config
from .data import Dataset, Sample, collate
from .evaluate import (
    ANOMALY_BASELINES,
    FORECAST_BASELINES,
    event_metrics,
    forecast_metrics,
    forecast_origins,
    load_events,
    node_window_metrics,
    root_cause_metrics,
    threshold_from_train,
)
from .pipeline import train_and_export
from .ranges import RangeError, parse_range
from .timeline import Timeline, load_timeline
from .train import train

CONFIGS = pathlib.Path(__file__).resolve().parents[1] / "configs"
DETECTOR_ABLATIONS = {
    "detector": {},
    "ablation_no_graph": {"use_graph": False},
    "ablation_no_transformer": {"use_temporal": False},
    "ablation_no_fusion": {"use_fusion": False},
    "ablation_no_edge_features": {"use_edge_features": False},
}
FORECASTER_VARIANTS = {
    "forecaster": {},
    "gru_only": {"use_graph": False},
    "gcn_only": {"use_temporal": False},
}
THRESHOLD_QUANTILE = 0.995


class BenchmarkError(RuntimeError):
    """The benchmark cannot run; the message says why."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--traces",
        action="append",
        required=True,
        metavar="PATH",
        help="nezha: a Nezha day directory (repeatable); otlp: a trace file (repeatable)",
    )
    p.add_argument("--format", choices=["nezha", "otlp"], default="otlp")
    p.add_argument(
        "--metrics",
        action="append",
        default=[],
        metavar="FILE",
        help="otlp: OTLP metric files (repeatable)",
    )
    p.add_argument("--labels", help="fault labels (JSON lines); nezha: default the imported ones")
    p.add_argument("--train-range", required=True, help="A..B: percentages, RFC 3339 or Unix s")
    p.add_argument("--test-range", required=True, help="C..D")
    p.add_argument("--out", required=True, help="report.json (report.md is written beside it)")
    p.add_argument("--window", default="60s", help="window length for dataset build (e.g. 10s)")
    p.add_argument("--steps", type=int, default=12, help="T windows of history")
    p.add_argument("--horizon", type=int, default=5, help="H windows ahead (forecaster)")
    p.add_argument("--detector-config", default=str(CONFIGS / "detector.toml"))
    p.add_argument("--forecaster-config", default=str(CONFIGS / "forecaster.toml"))
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="override a value of both configs (e.g. train.epochs=3)",
    )
    p.add_argument(
        "--drop-traceless",
        choices=["auto", "yes", "no"],
        default="auto",
        help="mask windows without spans (auto: yes for nezha, whose traces are cut)",
    )
    p.add_argument(
        "--methods",
        default="all",
        help="comma-separated subset of detector, ablations, baselines, forecast",
    )
    p.add_argument(
        "--meshwatch",
        help="the meshwatch binary (default: $MESHWATCH_BIN, PATH, "
        "$CARGO_TARGET_DIR/release, ~/.cache/meshwatch/target/release)",
    )
    p.add_argument("--work", help="keep the imported data and dataset here (default: temporary)")
    p.add_argument("--export-detector", help="also export the detector trained here to DIR")
    p.add_argument("--export-forecaster", help="also export the forecaster trained here to DIR")
    p.add_argument("--device", default=None, help="auto | cpu | cuda")
    p.add_argument("--title", default=None, help="title of report.md")
    p.add_argument(
        "--seeds",
        type=int,
        default=1,
        help="train each learned detector with this many seeds (train.seed + k); "
        "the report gives the mean and the spread",
    )


# --- running the Rust CLI -----------------------------------------------------------------------


def find_meshwatch(explicit: str | None) -> str:
    candidates = [explicit, os.environ.get("MESHWATCH_BIN"), shutil.which("meshwatch")]
    target = os.environ.get("CARGO_TARGET_DIR")
    if target:
        candidates.append(str(pathlib.Path(target) / "release" / "meshwatch"))
    candidates.append(str(pathlib.Path.home() / ".cache/meshwatch/target/release/meshwatch"))
    for c in candidates:
        if c and pathlib.Path(c).is_file() and os.access(c, os.X_OK):
            return c
    raise BenchmarkError(
        "the meshwatch binary was not found: build it (cargo build --release -p meshwatch-cli) "
        "and pass --meshwatch PATH or set MESHWATCH_BIN"
    )


def run_cli(binary: str, args: Sequence[str], log: Callable[[str], None]) -> None:
    log("$ meshwatch " + " ".join(args))
    r = subprocess.run([binary, *args], capture_output=True, text=True, check=False)
    if r.returncode != 0:
        raise BenchmarkError(f"meshwatch {args[0]} {args[1]} failed: {r.stderr.strip()[-2000:]}")


def _otlp_format(path: str) -> str:
    name = path.removesuffix(".gz")
    return "otlp-proto" if name.endswith(".pb") else "otlp-json"


def prepare_dataset(args: argparse.Namespace, work: pathlib.Path, log) -> tuple[Dataset, str]:
    binary = find_meshwatch(args.meshwatch)
    length = args.steps + args.horizon
    traces: list[str] = []
    metrics: list[str] = []
    labels = args.labels
    if args.format == "nezha":
        label_lines: list[str] = []
        for k, day in enumerate(args.traces):
            out = work / f"import-{k}"
            run_cli(
                binary,
                ["dataset", "import", "nezha", day, "--out", str(out), "--format", "otlp-proto"],
                log,
            )
            traces.append(str(out / "traces.otlp.pb"))
            if (out / "metrics.otlp.pb").is_file():
                metrics.append(str(out / "metrics.otlp.pb"))
            label_lines += (out / "labels.jsonl").read_text().splitlines()
        if labels is None:
            labels = str(work / "labels.jsonl")
            pathlib.Path(labels).write_text("".join(x + "\n" for x in label_lines if x.strip()))
    else:
        traces, metrics = list(args.traces), list(args.metrics)
        if labels is None:
            raise BenchmarkError("--format otlp needs --labels (the faults to evaluate against)")
    if not pathlib.Path(labels).is_file():
        raise BenchmarkError(f"{labels}: no such labels file")
    fmts = {_otlp_format(t) for t in traces}
    if len(fmts) != 1:
        raise BenchmarkError("all --traces files must have the same format (.pb or JSON)")
    build = [
        "dataset",
        "build",
        "--format",
        fmts.pop(),
        "--labels",
        labels,
        "--window",
        args.window,
        "--steps",
        str(length),
        "--out",
        str(work / "dataset"),
    ]
    for t in traces:
        build += ["--traces", t]
    if metrics:
        mfmts = {_otlp_format(m) for m in metrics}
        if len(mfmts) != 1:
            raise BenchmarkError("all --metrics files must have the same format")
        build += ["--metrics-format", mfmts.pop()]
        for m in metrics:
            build += ["--metrics", m]
    run_cli(binary, build, log)
    return Dataset(work / "dataset"), labels


# --- samples from a timeline --------------------------------------------------------------------


def grid_sample(tl: Timeline, end_ms: int, length: int, drop_traceless: bool) -> Sample:
    """The ``length`` grid windows ending at ``end_ms`` as a Sample (missing windows masked)."""
    arrays = tl.sample_at(end_ms, length, spans_only=drop_traceless)
    return Sample(
        graph=tl.graph,
        shard="timeline",
        start=0,
        node_names=tl.node_names,
        node_kind=tl.node_kind,
        labels={},
        **arrays,
    )


def training_samples(
    tl: Timeline, mask: np.ndarray, t: int, horizon: int, drop_traceless: bool
) -> list[Sample]:
    """Samples of T (+ H) windows whose window T−1 is a window of ``mask``."""
    out = []
    for w in np.flatnonzero(mask):
        end = int(tl.window_start_ms[w]) + horizon * tl.window_ms
        s = grid_sample(tl, end, t + horizon, drop_traceless)
        if s.node_mask[t - 1].sum() > 0:
            out.append(s)
    return out


@torch.no_grad()
def score_windows(
    model: torch.nn.Module,
    tl: Timeline,
    windows: np.ndarray,
    t: int,
    drop_traceless: bool,
    batch: int = 64,
) -> np.ndarray:
    """scores [W, N] of the detector at each window of ``windows`` (NaN elsewhere / absent)."""
    scores = np.full((tl.num_windows, tl.num_nodes), np.nan)
    ws = np.flatnonzero(windows)
    for i in range(0, len(ws), batch):
        chunk = ws[i : i + batch]
        samples = [grid_sample(tl, int(tl.window_start_ms[w]), t, drop_traceless) for w in chunk]
        b = collate(samples, same_time=False)
        s, _ = model(*b.model_inputs())
        s = s.numpy().reshape(len(chunk), tl.num_nodes)
        present = tl.node_mask[chunk] > 0
        scores[chunk] = np.where(present, s, np.nan)
    return scores


@torch.no_grad()
def forecast_windows(
    model: torch.nn.Module,
    tl: Timeline,
    origins: np.ndarray,
    t: int,
    horizon: int,
    drop_traceless: bool,
) -> np.ndarray:
    """pred [W, H, N, M] of the forecaster from each origin (NaN elsewhere)."""
    m = len(tl.target_names)
    pred = np.full((tl.num_windows, horizon, tl.num_nodes, m), np.nan, dtype=np.float64)
    for w in np.flatnonzero(origins):
        s = grid_sample(tl, int(tl.window_start_ms[w]), t, drop_traceless)
        b = collate([s])
        f, _ = model(*b.model_inputs(), b.window_start)
        seen = (s.node_mask.sum(0) > 0)[None, :, None]
        pred[w] = np.where(seen, f.numpy(), np.nan)
    return pred


# --- the run ------------------------------------------------------------------------------------


def _config(path: str, overrides: Sequence[str], steps: int, horizon: int, device) -> Config:
    extra = [f"data.steps={steps}", f"model.horizon={horizon}"]
    if device:
        extra.append(f'train.device="{device}"')
    return load_config(path, [*extra, *overrides])


def _masks(tl: Timeline, train_range: str, test_range: str) -> tuple[np.ndarray, np.ndarray]:
    has = tl.has_spans
    if not has.any():
        return has.copy(), has.copy()
    first, last = (int(x) for x in tl.window_start[has][[0, -1]])
    train = has & parse_range(train_range).mask(tl.window_start, first, last)
    test = has & parse_range(test_range).mask(tl.window_start, first, last)
    return train, test


def _clean(x: Any) -> Any:
    """JSON-safe: NaN/inf → None, numpy → Python."""
    if isinstance(x, dict):
        return {str(k): _clean(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_clean(v) for v in x]
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def evaluate_scores(
    name: str,
    scores: np.ndarray,
    tl: Timeline,
    train: np.ndarray,
    test: np.ndarray,
    events: list[dict],
    seconds: float,
) -> dict[str, Any]:
    service = tl.service_nodes
    present = tl.node_mask > 0
    valid = present & service[None, :] & tl.has_spans[:, None]
    valid_train, valid_test = valid & train[:, None], valid & test[:, None]
    labels = tl.label_root_cause if tl.label_root_cause is not None else np.zeros_like(valid)
    thr = threshold_from_train(scores, valid_train, THRESHOLD_QUANTILE)
    test_scores = np.where(test[:, None], scores, np.nan)
    return {
        "method": name,
        "seconds": round(seconds, 2),
        "threshold": thr,
        "node_window": node_window_metrics(test_scores, labels, valid_test),
        "event": event_metrics(
            test_scores,
            valid_test,
            tl.window_start_ms,
            tl.window_ms,
            events,
            thr if math.isfinite(thr) else None,
        ),
        "root_cause": root_cause_metrics(test_scores, valid_test, tl, events, thr),
    }


def _events_in(events: list[dict], tl: Timeline, mask: np.ndarray) -> list[dict]:
    if not mask.any():
        return []
    lo = int(tl.window_start_ms[mask].min())
    hi = int(tl.window_start_ms[mask].max()) + tl.window_ms
    return [e for e in events if lo <= int(e["start_ms"]) < hi]


def run_benchmark(args: argparse.Namespace, log: Callable[[str], None] = print) -> dict[str, Any]:
    t_start = time.monotonic()
    try:
        parse_range(args.train_range), parse_range(args.test_range)
    except RangeError as e:
        raise BenchmarkError(str(e)) from e
    methods = (
        {m.strip() for m in args.methods.split(",")}
        if args.methods != "all"
        else {"detector", "ablations", "baselines", "forecast"}
    )
    unknown = methods - {"detector", "ablations", "baselines", "forecast"}
    if unknown:
        raise BenchmarkError(f"--methods: unknown {sorted(unknown)}")
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = None
    if args.work:
        work = pathlib.Path(args.work)
        if work.exists() and any(work.iterdir()):
            raise BenchmarkError(f"--work {work} exists and is not empty")
        work.mkdir(parents=True, exist_ok=True)
    else:
        tmp = tempfile.TemporaryDirectory(prefix="meshwatch-bench-")
        work = pathlib.Path(tmp.name)
    try:
        dataset, labels_path = prepare_dataset(args, work, log)
        drop = args.drop_traceless == "yes" or (
            args.drop_traceless == "auto" and args.format == "nezha"
        )
        det_cfg = _config(args.detector_config, args.set, args.steps, args.horizon, args.device)
        fc_cfg = _config(args.forecaster_config, args.set, args.steps, args.horizon, args.device)
        det_cfg.data.drop_traceless = fc_cfg.data.drop_traceless = drop
        report: dict[str, Any] = {
            "settings": {
                "traces": args.traces,
                "format": args.format,
                "labels": labels_path,
                "train_range": args.train_range,
                "test_range": args.test_range,
                "window_ms": int(dataset.manifest["window_ms"]),
                "steps": args.steps,
                "horizon": args.horizon,
                "seeds": args.seeds,
                "methods": ",".join(sorted(methods)),
                "drop_traceless": drop,
                "threshold_rule": f"quantile {THRESHOLD_QUANTILE} of the per-window max score "
                "over the training windows",
                "detector_config": det_cfg.to_dict(),
                "forecaster_config": fc_cfg.to_dict(),
                "torch": torch.__version__,
            },
            "dataset": {"totals": dataset.manifest.get("totals")},
            "graphs": {},
        }
        for g in dataset.graphs:
            report["graphs"][g["graph"]] = run_graph(
                g["graph"], dataset, labels_path, args, det_cfg, fc_cfg, drop, methods, log
            )
        report["seconds"] = round(time.monotonic() - t_start, 1)
        report["summary"] = summarise(report)
        report = _clean(report)
        out.write_text(json.dumps(report, indent=2) + "\n")
        md = out.with_suffix(".md")
        md.write_text(render_markdown(report, args.title))
        log(f"wrote {out} and {md}")
        return report
    finally:
        if tmp is not None:
            tmp.cleanup()


def run_graph(
    graph: str,
    dataset: Dataset,
    labels_path: str,
    args,
    det_cfg: Config,
    fc_cfg: Config,
    drop: bool,
    methods: set[str],
    log,
) -> dict[str, Any]:
    tl = load_timeline(dataset, graph)
    train_m, test_m = _masks(tl, args.train_range, args.test_range)
    events_all = load_events(labels_path, graph)
    events = _events_in(events_all, tl, test_m)
    t, h = args.steps, args.horizon
    info: dict[str, Any] = {
        "windows": tl.num_windows,
        "windows_with_spans": int(tl.has_spans.sum()),
        "train_windows": int(train_m.sum()),
        "test_windows": int(test_m.sum()),
        "overlap_windows": int((train_m & test_m).sum()),
        "nodes": tl.num_nodes,
        "service_nodes": int(tl.service_nodes.sum()),
        "edges": tl.num_edges,
        "faults_in_train_range": len(_events_in(events_all, tl, train_m)),
        "faults_in_test_range": len(events),
        "train_windows_with_fault": int((train_m & (tl.label_any_fault > 0)).sum())
        if tl.label_any_fault is not None
        else None,
    }
    log(f"{graph}: {json.dumps(info)}")
    if not train_m.any() or not test_m.any():
        raise BenchmarkError(f"{graph}: the train or test range holds no window with spans")
    detection: dict[str, Any] = {}
    want = [
        k
        for k in DETECTOR_ABLATIONS
        if ("detector" in methods and k == "detector")
        or ("ablations" in methods and k != "detector")
    ]
    samples = training_samples(tl, train_m, t, 0, drop)
    for name in want:
        runs = []
        for k in range(max(1, args.seeds)):
            cfg = copy_config(det_cfg)
            cfg.train = replace(cfg.train, seed=det_cfg.train.seed + k)
            cfg.model = replace(cfg.model, **DETECTOR_ABLATIONS[name])
            t0 = time.monotonic()
            result = train(cfg, dataset, samples)
            scores = score_windows(result.model, tl, train_m | test_m, t, drop)
            r = evaluate_scores(name, scores, tl, train_m, test_m, events, time.monotonic() - t0)
            r["training"] = result.history[-1] if result.history else {}
            r["seed"] = cfg.train.seed
            runs.append(r)
        detection[name] = merge_seeds(runs)
        _log_method(log, graph, detection[name])
        if name == "detector" and args.export_detector:
            ecfg = copy_config(det_cfg)
            ecfg.export = replace(ecfg.export, out=args.export_detector)
            train_and_export(ecfg, dataset, log, metrics=_card_metrics(runs[0]), samples=samples)
    if "baselines" in methods:
        for name, fn in ANOMALY_BASELINES.items():
            t0 = time.monotonic()
            scores = fn(tl, train_m, train_m | test_m)
            detection[name] = evaluate_scores(
                name, scores, tl, train_m, test_m, events, time.monotonic() - t0
            )
            _log_method(log, graph, detection[name])
    info["detection"] = detection
    if "forecast" in methods:
        info["forecast"] = run_forecast(tl, dataset, train_m, test_m, fc_cfg, drop, t, h, args, log)
    return info


def run_forecast(tl, dataset, train_m, test_m, fc_cfg, drop, t, h, args, log) -> dict[str, Any]:
    """Every forecaster and baseline forecasts H windows from each test window with spans; all
    are scored on the same cells: those every method forecasts (the learned ones leave out a node
    without any input window, which last value and ETS still carry forward). Seasonal naive,
    which applies only where the timeline holds a day before the target, is scored on the part of
    those cells it forecasts. ``metrics_fault_free``: the same, outside every labelled fault."""
    origins = forecast_origins(tl, test_m)
    # forecasts from and of windows outside every labelled fault: normal operation, which a
    # forecaster can be expected to foresee (a fault's jumps it cannot)
    in_fault = None if tl.label_any_fault is None else tl.label_any_fault > 0
    samples = training_samples(tl, train_m, t, h, drop)
    preds: dict[str, np.ndarray] = {}
    results: dict[str, Any] = {}
    for name, change in FORECASTER_VARIANTS.items():
        cfg = copy_config(fc_cfg)
        cfg.model = replace(cfg.model, **change)
        t0 = time.monotonic()
        result = train(cfg, dataset, samples)
        preds[name] = forecast_windows(result.model, tl, origins, t, h, drop)
        results[name] = {"seconds": round(time.monotonic() - t0, 2)}
        if name == "forecaster" and args.export_forecaster:
            ecfg = copy_config(fc_cfg)
            ecfg.export = replace(ecfg.export, out=args.export_forecaster)
            train_and_export(
                ecfg,
                dataset,
                log,
                metrics=_fc_card_metrics(
                    {"metrics": forecast_metrics(preds[name], tl, h, origins, tl.service_nodes)}
                ),
                samples=samples,
            )
    for name, fn in FORECAST_BASELINES.items():
        t0 = time.monotonic()
        preds[name] = fn(tl, train_m, test_m, h)
        results[name] = {"seconds": round(time.monotonic() - t0, 2)}
    for name, scores in score_forecasts(preds, tl, h, origins, in_fault).items():
        results[name].update(scores)
        log(f"forecast {name}: {_fmt_fc(results[name]['metrics'])}")
    return results


def score_forecasts(
    preds: dict[str, np.ndarray],
    tl: Timeline,
    h: int,
    origins: np.ndarray,
    in_fault: np.ndarray | None,
) -> dict[str, dict[str, Any]]:
    """``{method: {"metrics": ..., "metrics_fault_free": ...}}`` for forecasts [W, H, N, M]
    of several methods, all on the cells every method forecasts (seasonal naive, which applies
    only where a season back exists, on the part of them it forecasts)."""
    common = np.ones(next(iter(preds.values())).shape, dtype=bool)
    for name, pred in preds.items():
        if name != "seasonal_naive":
            common &= np.isfinite(pred)
    out: dict[str, dict[str, Any]] = {}
    for name, pred in preds.items():
        pred = np.where(common, pred, np.nan)
        out[name] = {"metrics": forecast_metrics(pred, tl, h, origins, tl.service_nodes)}
        if in_fault is not None:
            out[name]["metrics_fault_free"] = forecast_metrics(
                pred, tl, h, origins, tl.service_nodes, exclude=in_fault
            )
    return out


def _mae(metrics: dict, target: str, h: int) -> float:
    cell = metrics.get(target, {}).get(h) or metrics.get(target, {}).get(str(h)) or {}
    v = cell.get("mae")
    return float("nan") if v is None else float(v)


def _fmt_fc(metrics: dict) -> str:
    return ", ".join(f"{tg} MAE@1 {_mae(metrics, tg, 1):.4g}" for tg in metrics)


def _g(d: Any, *path: str) -> Any:
    for k in path:
        if not isinstance(d, dict):
            return None
        d = d.get(k)
    return d


def _f(v: Any, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def _log_method(log, graph: str, r: dict[str, Any]) -> None:
    log(
        f"{graph} {r['method']}: AUROC {_f(_g(r, 'node_window', 'auroc'))} "
        f"AUPRC {_f(_g(r, 'node_window', 'auprc'))} F1 {_f(_g(r, 'node_window', 'f1'))} "
        f"event F1 {_f(_g(r, 'event', 'at_threshold', 'f1'))} "
        f"AC@1 {_f(_g(r, 'root_cause', 'score', 'ac@1'))} ({r['seconds']} s)"
    )


def _card_metrics(r: dict[str, Any]) -> dict[str, Any]:
    nw, ev = r["node_window"], r["event"]
    return {
        "benchmark_auprc": nw.get("auprc"),
        "benchmark_auroc": nw.get("auroc"),
        "benchmark_event_f1": ev.get("f1"),
    }


def _fc_card_metrics(r: dict[str, Any]) -> dict[str, Any]:
    return {f"benchmark MAE h=1 {k}": _mae(r["metrics"], k, 1) for k in r["metrics"]}


DETECTION_ROWS = [
    ("AUROC", ("node_window", "auroc")),
    ("AUPRC", ("node_window", "auprc")),
    ("best F1", ("node_window", "f1")),
    ("PA-F1 (inflated)", ("node_window", "pa_f1")),
    ("event F1 @thr", ("event", "at_threshold", "f1")),
    ("event recall", ("event", "at_threshold", "recall")),
    ("event precision", ("event", "at_threshold", "precision")),
    ("false alarms/h", ("event", "at_threshold", "false_alarms_per_hour")),
    ("delay s (median)", ("event", "at_threshold", "delay_median_s")),
    ("event F1 (oracle thr)", ("event", "best_oracle", "f1")),
    ("AC@1", ("root_cause", "score", "ac@1")),
    ("AC@3", ("root_cause", "score", "ac@3")),
    ("Avg@5", ("root_cause", "score", "avg@5")),
    ("AC@1 PPR", ("root_cause", "ppr", "ac@1")),
    ("AC@3 PPR", ("root_cause", "ppr", "ac@3")),
]


def merge_seeds(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One method entry from runs with several seeds: the headline metrics (DETECTION_ROWS) are
    the mean over the seeds, ``seed_std`` their standard deviation, ``per_seed`` every run."""
    if len(runs) == 1:
        return runs[0]
    out = json.loads(json.dumps(_clean(runs[0])))
    out["seconds"] = round(sum(r["seconds"] for r in runs), 2)
    std: dict[str, Any] = {}
    for label, path in DETECTION_ROWS:
        vals = [_g(r, *path) for r in runs]
        vals = [float(v) for v in vals if isinstance(v, int | float) and math.isfinite(v)]
        mean = float(np.mean(vals)) if vals else None
        node = out
        for k in path[:-1]:
            node = node.setdefault(k, {}) if isinstance(node.get(k), dict | None) else {}
        node[path[-1]] = mean
        std[label] = float(np.std(vals)) if vals else None
    out["seed_std"] = std
    out["seeds"] = [r["seed"] for r in runs]
    out["per_seed"] = [
        {"seed": r["seed"], **{label: _g(r, *path) for label, path in DETECTION_ROWS}} for r in runs
    ]
    return out


def _forecast_gains(fc: dict[str, Any], key: str, horizon: int) -> dict[str, Any]:
    """Per target and h ∈ {1, H}: the forecaster's MAE against the best classical baseline's,
    from the metrics under ``key`` (``metrics`` or ``metrics_fault_free``)."""
    classical = [m for m in FORECAST_BASELINES if m in fc]
    gains: dict[str, Any] = {}
    for tg in list(_g(fc, "forecaster", key) or {}):
        for h in sorted({1, horizon}):
            mine_mae = _mae(fc["forecaster"][key], tg, h)
            base = [(m, _mae(fc[m].get(key, {}), tg, h)) for m in classical]
            base = [(m, v) for m, v in base if math.isfinite(v)]
            if not base or not math.isfinite(mine_mae):
                continue
            bm, bv = min(base, key=lambda kv: kv[1])
            gains[f"{tg} h={h}"] = {
                "forecaster_mae": mine_mae,
                "best_classical": bm,
                "best_classical_mae": bv,
                "gain": (1.0 - mine_mae / bv) if bv > 0 else None,
            }
    return gains


def summarise(report: dict[str, Any]) -> dict[str, Any]:
    """Per graph: each method's headline numbers; whether the detector beats every other method
    on AUPRC and event F1; forecaster MAE gains over the best classical baseline."""
    out: dict[str, Any] = {}
    for graph, g in report["graphs"].items():
        det = g.get("detection", {})
        rows = {m: {label: _g(r, *path) for label, path in DETECTION_ROWS} for m, r in det.items()}
        entry: dict[str, Any] = {"detection": rows}
        if "detector" in rows and len(rows) > 1:
            mine = rows["detector"]
            others = {m: r for m, r in rows.items() if m != "detector"}
            for key in ("AUPRC", "event F1 @thr"):
                best_other = max(
                    others.items(),
                    key=lambda kv: -1.0 if kv[1][key] is None else kv[1][key],
                )
                entry[f"detector beats all on {key}"] = mine[key] is not None and all(
                    r[key] is None or mine[key] > r[key] for r in others.values()
                )
                entry[f"best other on {key}"] = [best_other[0], best_other[1][key]]
        fc = g.get("forecast")
        if fc:
            horizon = report["settings"]["horizon"]
            entry["forecast_mae_gain_vs_best_classical"] = _forecast_gains(fc, "metrics", horizon)
            if _g(fc, "forecaster", "metrics_fault_free"):
                entry["forecast_mae_gain_vs_best_classical_fault_free"] = _forecast_gains(
                    fc, "metrics_fault_free", horizon
                )
        out[graph] = entry
    return out


def render_markdown(report: dict[str, Any], title: str | None) -> str:
    st = report["settings"]
    lines = [
        f"# {title or 'Meshwatch benchmark'}",
        "",
        f"Traces: {', '.join(st['traces'])} ({st['format']}); labels: {st['labels']}.",
        f"Train range `{st['train_range']}`, test range `{st['test_range']}`, windows of "
        f"{st['window_ms'] / 1000:g} s, T = {st['steps']}, H = {st['horizon']}; windows "
        f"without spans masked: {st['drop_traceless']}; torch {st['torch']}; "
        f"{report.get('seconds')} s in all.",
        f"Alarm threshold of every method: {st['threshold_rule']}.",
        "Learned detectors trained with several seeds show the mean ± standard deviation. "
        "Node-window metrics count service nodes present in test windows with spans; positives "
        "are the labelled root cause's windows. PA-F1 (point-adjusted) is shown for comparison "
        "only: it inflates results. Oracle-threshold event F1 reads the labels.",
        "",
    ]
    for graph, g in report["graphs"].items():
        lines += [f"## {graph}", ""]
        keys = [k for k in g if k not in ("detection", "forecast")]
        lines.append("; ".join(f"{k} {_f(g[k])}" for k in keys) + ".")
        lines.append("")
        det = g.get("detection", {})
        if det:
            methods = list(det)
            lines.append("| metric | " + " | ".join(methods) + " |")
            lines.append("|---|" + "---:|" * len(methods))
            for label, path in DETECTION_ROWS:
                cells = []
                for m in methods:
                    cell = _f(_g(det[m], *path))
                    sd = _g(det[m], "seed_std", label)
                    cells.append(f"{cell} ±{_f(sd)}" if sd is not None else cell)
                lines.append(f"| {label} | " + " | ".join(cells) + " |")
            lines.append(
                "| seconds | " + " | ".join(_f(det[m].get("seconds"), 1) for m in methods) + " |"
            )
            lines.append("")
            summ = report["summary"].get(graph, {})
            for key in ("AUPRC", "event F1 @thr"):
                if f"detector beats all on {key}" in summ:
                    b = summ[f"best other on {key}"]
                    lines.append(
                        f"- Detector beats every other method on {key}: "
                        f"**{'yes' if summ[f'detector beats all on {key}'] else 'no'}** "
                        f"(best other: {b[0]}, {_f(b[1])})."
                    )
            lines.append("")
        fc = g.get("forecast")
        if fc:
            sets = [("metrics", "", "forecast_mae_gain_vs_best_classical")]
            if _g(fc, "forecaster", "metrics_fault_free"):
                sets.append(
                    (
                        "metrics_fault_free",
                        ", origin and target windows outside every labelled fault",
                        "forecast_mae_gain_vs_best_classical_fault_free",
                    )
                )
            for key, heading, gains_key in sets:
                lines += _forecast_table(fc, key, heading, st["horizon"])
                gains = report["summary"].get(graph, {}).get(gains_key, {})
                for k, v in gains.items():
                    lines.append(
                        f"- {k}: forecaster MAE {_f(v['forecaster_mae'], 4)} vs "
                        f"{v['best_classical']} {_f(v['best_classical_mae'], 4)}: "
                        f"gain {_f(v['gain'])}"
                    )
                lines.append("")
    return "\n".join(lines)


def _forecast_table(fc: dict[str, Any], key: str, heading: str, horizon: int) -> list[str]:
    methods = [m for m in fc if key in fc[m]]
    targets = list(_g(fc, methods[0], key) or {}) if methods else []
    lines = [f"### Forecast (original scale, service nodes{heading})", ""]
    lines.append("| target | h | metric | " + " | ".join(methods) + " |")
    lines.append("|---|---:|---|" + "---:|" * len(methods))
    for tg in targets:
        for h in sorted({1, horizon}):
            for metric in ("count", "mae", "rmse", "r2", "smape"):
                vals = []
                for m in methods:
                    cell = _g(fc[m], key, tg, str(h)) or _g(fc[m], key, tg, h)
                    vals.append(_f(_g(cell, metric), 4))
                lines.append(f"| {tg} | {h} | {metric} | " + " | ".join(vals) + " |")
    lines.append("")
    return lines

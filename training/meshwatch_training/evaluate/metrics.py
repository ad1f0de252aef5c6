"""Detection metrics: node-window scores against labels, and fault events against alarms.

Conventions shared by every function here:

* ``scores [W, N]`` float, higher = more anomalous, NaN where a detector gave no score;
* ``valid [W, N]`` bool, the node-windows that count (typically service nodes present in windows
  with spans, in the test range). Cells outside ``valid`` are ignored entirely;
* a NaN score in a valid cell is treated as ``-inf`` (never alarms, ranks last) and counted in
  ``unscored``, so a detector cannot look better by abstaining;
* an alarm is ``score >= threshold``.
"""

from __future__ import annotations

import json
import pathlib
from collections.abc import Sequence
from typing import Any

import numpy as np


def _prep(scores: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, int]:
    s = np.asarray(scores, dtype=np.float64)
    v = np.asarray(valid, dtype=bool)
    if s.shape != v.shape:
        raise ValueError(f"scores {s.shape} and valid {v.shape} differ")
    unscored = int((~np.isfinite(s) & v).sum())
    s = np.where(np.isnan(s), -np.inf, s)
    return s, unscored


# ------------------------------------------------------------------------- threshold-free metrics
def auroc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve of 1-D ``scores`` against 0/1 ``labels``.

    AUROC = P(s⁺ > s⁻) + ½ P(s⁺ = s⁻) over all (positive, negative) pairs, computed as the
    Mann-Whitney U statistic with mid-ranks for ties: (Σ rank⁺ − P(P+1)/2) / (P·N).
    ``-inf`` scores tie with each other. NaN when there are no positives or no negatives.
    """
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels).astype(bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(s, kind="mergesort")
    s_sorted = s[order]
    ranks = np.empty(s.size, dtype=np.float64)
    # mid-ranks of tie groups (1-based)
    bounds = np.flatnonzero(s_sorted[1:] != s_sorted[:-1]) + 1
    starts = np.concatenate([[0], bounds])
    ends = np.concatenate([bounds, [s.size]])
    mid = (starts + ends + 1) / 2.0
    ranks[order] = np.repeat(mid, ends - starts)
    u = ranks[y].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def _pr_curve(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, ...]:
    """TP, FP at each distinct finite threshold (alarm = score >= thr), thresholds descending."""
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels).astype(bool)
    order = np.argsort(-s, kind="mergesort")
    s_sorted, y_sorted = s[order], y[order]
    tp = np.cumsum(y_sorted)
    fp = np.cumsum(~y_sorted)
    # last index of each group of equal scores: the threshold includes the whole group
    last = np.flatnonzero(np.concatenate([s_sorted[1:] != s_sorted[:-1], [True]]))
    thr = s_sorted[last]
    keep = np.isfinite(thr)  # -inf never alarms
    return tp[last][keep], fp[last][keep], thr[keep]


def average_precision(scores: np.ndarray, labels: np.ndarray) -> float:
    """Average precision (area under the precision-recall curve, step rule of scikit-learn):

    AP = Σ_k (R_k − R_{k−1}) · P_k over distinct thresholds in descending order, with
    P_k = TP_k / (TP_k + FP_k), R_k = TP_k / #positives, R_0 = 0. Cells scored ``-inf`` never
    alarm, so positives among them add no recall (the curve stops before reaching recall 1).
    NaN without positives.
    """
    y = np.asarray(labels).astype(bool)
    n_pos = int(y.sum())
    if n_pos == 0:
        return float("nan")
    tp, fp, _ = _pr_curve(scores, y)
    if tp.size == 0:
        return 0.0
    precision = tp / np.maximum(tp + fp, 1)
    recall = tp / n_pos
    d_recall = np.diff(np.concatenate([[0.0], recall]))
    return float(np.sum(d_recall * precision))


def best_f1(scores: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """The best F1 over all thresholds (alarm = score >= thr, each distinct score tried).

    F1 = 2·TP / (2·TP + FP + FN). Returns ``f1``, ``threshold``, ``precision``, ``recall``
    (ties between thresholds: the highest threshold wins). NaN fields without positives;
    ``f1`` 0 and threshold +inf when no finite score exists.
    """
    y = np.asarray(labels).astype(bool)
    n_pos = int(y.sum())
    nan = float("nan")
    if n_pos == 0:
        return {"f1": nan, "threshold": nan, "precision": nan, "recall": nan}
    tp, fp, thr = _pr_curve(scores, y)
    if tp.size == 0:
        return {"f1": 0.0, "threshold": float("inf"), "precision": nan, "recall": 0.0}
    f1 = 2 * tp / (2 * tp + fp + (n_pos - tp))
    k = int(np.argmax(f1))
    return {
        "f1": float(f1[k]),
        "threshold": float(thr[k]),
        "precision": float(tp[k] / max(tp[k] + fp[k], 1)),
        "recall": float(tp[k] / n_pos),
    }


def _point_adjusted_scores(s: np.ndarray, y: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Scores where every valid positive cell of a run takes the run's max valid score.

    A run is a maximal sequence of consecutive windows (array axis 0) with label 1 for one node;
    a cell outside ``valid`` inside a run does not break it but is not scored.
    """
    adj = s.copy()
    w, n = y.shape
    for j in range(n):
        col = y[:, j].astype(bool)
        if not col.any():
            continue
        edges = np.diff(np.concatenate([[0], col.astype(np.int8), [0]]))
        for a, b in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1), strict=False):
            cells = np.arange(a, b)[v[a:b, j]]
            if cells.size:
                adj[cells, j] = s[cells, j].max()
    return adj


def node_window_metrics(
    scores: np.ndarray, labels: np.ndarray, valid: np.ndarray
) -> dict[str, Any]:
    """Threshold-free and best-threshold metrics of node-window scores.

    Inputs: ``scores [W, N]`` (NaN = not scored), ``labels [W, N]`` 0/1 (e.g. the timeline's
    ``label_root_cause``), ``valid [W, N]`` bool. Over the valid cells:

    * ``auroc`` (Mann-Whitney, ties count ½), ``auprc`` (average precision, see
      :func:`average_precision`);
    * ``f1``/``threshold``/``precision``/``recall``: best F1 over thresholds, no point adjustment
      (an oracle threshold: it reads the labels);
    * ``pa_f1`` (+ ``pa_threshold``, ``pa_precision``, ``pa_recall``): point-adjusted F1 — per
      node, each run of consecutive positive windows counts as fully detected if any valid cell
      of it alarms; best over thresholds. Equivalent to replacing each positive cell's score by its
      run's max, so ``pa_f1 >= f1`` always. Point adjustment inflates scores (a long fault hit
      once counts as found throughout); report it next to ``f1``, never alone;
    * ``positives``, ``negatives``, ``unscored`` (valid cells with a NaN score, ranked -inf).
    """
    s, unscored = _prep(scores, valid)
    y = np.asarray(labels).astype(bool)
    v = np.asarray(valid, dtype=bool)
    if y.shape != v.shape:
        raise ValueError(f"labels {y.shape} and valid {v.shape} differ")
    sv, yv = s[v], y[v]
    out: dict[str, Any] = {
        "positives": int(yv.sum()),
        "negatives": int((~yv).sum()),
        "unscored": unscored,
        "auroc": auroc(sv, yv),
        "auprc": average_precision(sv, yv),
    }
    out.update(best_f1(sv, yv))
    adj = _point_adjusted_scores(s, y, v)
    pa = best_f1(adj[v], yv)
    out.update({f"pa_{k}": val for k, val in pa.items()})
    return out


# ------------------------------------------------------------------------------- event metrics
def load_events(path: str | pathlib.Path, graph: str | None = None) -> list[dict[str, Any]]:
    """Fault labels (docs/labels.md, JSON lines) as dicts, optionally of one graph only."""
    out = []
    for line in pathlib.Path(path).read_text().splitlines():
        if line.strip():
            ev = json.loads(line)
            if graph is None or ev.get("graph") == graph:
                out.append(ev)
    return out


def events_from_timeline(timeline: Any) -> list[dict[str, Any]]:
    """Approximate events from a timeline's per-window labels (when the labels file is gone).

    A run of consecutive grid windows with ``label_any_fault`` 1 and the same set of root-cause
    nodes is one event ``[first window start, last window end)``; its fault type is the run's
    most frequent ``label_fault_type``. Boundaries are rounded out to windows, and two faults that
    overlap in time merge — prefer :func:`load_events` on the labels file.
    """
    if timeline.label_any_fault is None:
        return []
    wms = int(timeline.window_ms)
    events: list[dict[str, Any]] = []
    cur: dict[str, Any] | None = None
    for w in range(timeline.num_windows):
        if not timeline.label_any_fault[w]:
            cur = None
            continue
        rc = tuple(timeline.node_names[timeline.label_root_cause[w] > 0].tolist())
        start = int(timeline.window_start_ms[w])
        if cur is not None and cur["_rc"] == rc and cur["end_ms"] == start:
            cur["end_ms"] = start + wms
            cur["_types"].append(int(timeline.label_fault_type[w]))
            continue
        cur = {"start_ms": start, "end_ms": start + wms, "_rc": rc}
        cur["_types"] = [int(timeline.label_fault_type[w])]
        events.append(cur)
    out = []
    for ev in events:
        types = [t for t in ev["_types"] if t >= 0]
        ft = max(set(types), key=types.count) if types else -1
        name = timeline.fault_type_names[ft] if 0 <= ft < len(timeline.fault_type_names) else ""
        for rc in ev["_rc"] or ("",):
            out.append(
                {
                    "graph": timeline.graph,
                    "start_ms": ev["start_ms"],
                    "end_ms": ev["end_ms"],
                    "root_cause": rc,
                    "fault_type": name,
                }
            )
    return out


def _overlaps(ws: np.ndarray, wms: int, lo: float, hi: float) -> np.ndarray:
    """Windows ``[s, s + wms)`` that overlap ``[lo, hi)``."""
    return (ws < hi) & (ws + wms > lo)


def _event_spans(
    window_start_ms: np.ndarray, window_ms: int, events: Sequence[dict], grace: int, pre: int
) -> tuple[np.ndarray, np.ndarray]:
    """[K, W] windows of each event span [start, end + grace) and of its tolerance zone
    [start − pre windows, end + grace)."""
    ws = np.asarray(window_start_ms, dtype=np.int64)
    span = np.zeros((len(events), ws.size), dtype=bool)
    zone = np.zeros_like(span)
    for k, ev in enumerate(events):
        lo, hi = int(ev["start_ms"]), int(ev["end_ms"]) + grace * window_ms
        span[k] = _overlaps(ws, window_ms, lo, hi)
        zone[k] = _overlaps(ws, window_ms, lo - pre * window_ms, hi)
    return span, zone


def _event_eval(
    alarm: np.ndarray,
    has_data: np.ndarray,
    ws: np.ndarray,
    window_ms: int,
    events: Sequence[dict],
    span: np.ndarray,
    zone: np.ndarray,
) -> dict[str, Any]:
    nan = float("nan")
    per_event = []
    delays = []
    detected = observable = 0
    for k, ev in enumerate(events):
        obs = span[k] & has_data
        rec: dict[str, Any] = {
            "start_ms": int(ev["start_ms"]),
            "end_ms": int(ev["end_ms"]),
            "root_cause": ev.get("root_cause"),
            "fault_type": ev.get("fault_type"),
            "observable": bool(obs.any()),
            "detected": False,
            "delay_s": None,
        }
        if obs.any():
            observable += 1
            hits = np.flatnonzero(obs & alarm)
            if hits.size:
                detected += 1
                d = max(0.0, (int(ws[hits[0]]) - int(ev["start_ms"])) / 1000.0)
                rec.update(detected=True, delay_s=d)
                delays.append(d)
        per_event.append(rec)
    in_span = span.any(axis=0) if len(events) else np.zeros_like(alarm)
    in_zone = zone.any(axis=0) if len(events) else np.zeros_like(alarm)
    pre_only = in_zone & ~in_span
    fault_free = has_data & ~in_zone
    alarms_counted = alarm & ~pre_only
    n_alarm = int(alarms_counted.sum())
    tp_alarm = int((alarm & in_span).sum())
    ff_hours = float(fault_free.sum()) * window_ms / 3.6e6
    false_alarms = int((alarm & fault_free).sum())
    precision = tp_alarm / n_alarm if n_alarm else nan
    recall = detected / observable if observable else nan
    if np.isfinite(precision) and np.isfinite(recall) and precision + recall > 0:
        f1 = 2 * precision * recall / (precision + recall)
    elif np.isfinite(recall):
        f1 = 0.0
    else:
        f1 = nan
    return {
        "events": len(events),
        "observable": observable,
        "not_observable": len(events) - observable,
        "detected": detected,
        "recall": recall,
        "precision": precision,
        "f1": f1,
        "alarm_windows": int(alarm.sum()),
        "alarms_in_events": tp_alarm,
        "alarms_before_events": int((alarm & pre_only).sum()),
        "false_alarms": false_alarms,
        "fault_free_hours": ff_hours if fault_free.any() else None,
        "false_alarms_per_hour": false_alarms / ff_hours if fault_free.any() else None,
        "delay_mean_s": float(np.mean(delays)) if delays else None,
        "delay_median_s": float(np.median(delays)) if delays else None,
        "per_event": per_event,
    }


def window_max_score(scores: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """[W] max score over the valid nodes of each window (-inf without a finite valid score)."""
    s, _ = _prep(scores, valid)
    s = np.where(valid, s, -np.inf)
    return s.max(axis=1) if s.shape[1] else np.full(s.shape[0], -np.inf)


def event_metrics(
    scores: np.ndarray,
    valid: np.ndarray,
    window_start_ms: np.ndarray,
    window_ms: int,
    events: Sequence[dict],
    threshold: float | None,
    grace_windows: int = 2,
    pre_windows: int = 1,
    max_thresholds: int = 400,
) -> dict[str, Any]:
    """Event-level detection of faults from node-window scores.

    Definitions (``ws`` = window start, windows are ``[ws, ws + window_ms)``):

    * alarm window: some valid node has ``score >= threshold``; a window has data if it has at
      least one valid cell;
    * event span: windows overlapping ``[start_ms, end_ms + grace_windows·window_ms)`` (the label
      overlap rule of docs/dataset-format.md, plus grace for late detection). An event is
      *observable* if some window of its span has data, else excluded from recall (counted in
      ``not_observable``); it is *detected* if some alarm window is in its span;
    * delay (s) = start of the first alarm window of the span − ``start_ms``, clipped at 0;
      ``delay_mean_s``/``delay_median_s`` over detected events;
    * tolerance zone: windows overlapping ``[start_ms − pre_windows·window_ms, end + grace)``
      (labels are uncertain by about a window, docs/labels.md). Fault-free windows: windows with
      data in no event's zone. ``false_alarms_per_hour`` = alarms in fault-free windows / hours of
      fault-free windows (``fault_free_hours``); both null (None) when no window is fault-free;
    * event ``precision`` = alarm windows inside some event span / alarm windows, where alarms
      in a zone but before its span (``alarms_before_events``) are neither right nor wrong and are
      left out of both; ``recall`` = detected / observable; ``f1`` their harmonic mean (0 when both
      are 0; precision NaN when nothing alarms);
    * ``best`` (oracle threshold, it reads the labels): the threshold among the distinct window-max
      scores (at most ``max_thresholds`` of them, by quantiles) maximising the event F1, with that
      F1/precision/recall. ``at_threshold`` holds the result at ``threshold`` (None: only best).
    """
    v = np.asarray(valid, dtype=bool)
    s, unscored = _prep(scores, v)
    ws = np.asarray(window_start_ms, dtype=np.int64)
    wmax = window_max_score(s, v)
    has_data = v.any(axis=1)
    span, zone = _event_spans(ws, int(window_ms), events, grace_windows, pre_windows)
    out: dict[str, Any] = {"unscored": unscored, "threshold": threshold}
    if threshold is not None:
        out["at_threshold"] = _event_eval(
            wmax >= threshold, has_data, ws, window_ms, events, span, zone
        )
    cands = np.unique(wmax[np.isfinite(wmax) & has_data])
    if cands.size > max_thresholds:
        cands = np.unique(np.quantile(cands, np.linspace(0, 1, max_thresholds)))
    best: dict[str, Any] = {"f1": float("nan"), "threshold": None}
    for thr in cands[::-1]:
        r = _event_eval(wmax >= thr, has_data, ws, window_ms, events, span, zone)
        if np.isfinite(r["f1"]) and not (r["f1"] <= best["f1"]):
            best = {
                "f1": r["f1"],
                "precision": r["precision"],
                "recall": r["recall"],
                "threshold": float(thr),
                "false_alarms_per_hour": r["false_alarms_per_hour"],
            }
    out["best_oracle"] = best
    return out


def threshold_from_train(
    train_scores: np.ndarray, valid: np.ndarray, quantile: float = 0.995
) -> float:
    """The unsupervised alarm threshold: the ``quantile`` of the per-window max valid node score
    over the training windows (``valid`` should cover the training range only; windows without
    a finite valid score are left out). NaN when no training window is scored.

    Scores on the training range are in-sample for a detector fitted there, so this threshold is
    optimistic-low at worst; it never reads labels."""
    s = np.asarray(train_scores, dtype=np.float64)
    v = np.asarray(valid, dtype=bool) & np.isfinite(s)
    wmax = np.where(v, s, -np.inf).max(axis=1) if s.shape[1] else np.full(s.shape[0], -np.inf)
    wmax = wmax[np.isfinite(wmax)]
    if wmax.size == 0:
        return float("nan")
    return float(np.quantile(wmax, quantile))

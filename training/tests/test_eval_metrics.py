"""evaluate/metrics.py on hand-computable cases (and scikit-learn where it has the metric)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from meshwatch_training.evaluate.metrics import (
    auroc,
    average_precision,
    best_f1,
    event_metrics,
    node_window_metrics,
    threshold_from_train,
)

WMS = 10_000
T0 = 1_700_000_000_000


def test_auroc_auprc_match_sklearn_with_ties() -> None:
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 200)
    s = np.round(rng.normal(size=200) + y, 1)  # rounded: many ties
    assert auroc(s, y) == pytest.approx(roc_auc_score(y, s))
    assert average_precision(s, y) == pytest.approx(average_precision_score(y, s))


def test_hand_computed_auroc_ap_f1() -> None:
    s = np.array([0.9, 0.8, 0.7, 0.6])
    y = np.array([1, 0, 1, 0])
    # pairs (pos, neg): (0.9>0.8) (0.9>0.6) (0.7<0.8) (0.7>0.6) → 3/4
    assert auroc(s, y) == pytest.approx(0.75)
    # AP = 0.5·1 + 0.5·(2/3)
    assert average_precision(s, y) == pytest.approx(0.5 + 1 / 3)
    b = best_f1(s, y)
    # thr 0.9: P1 R.5 F .667; thr 0.7: P 2/3 R1 F .8
    assert b["f1"] == pytest.approx(0.8) and b["threshold"] == pytest.approx(0.7)
    assert b["precision"] == pytest.approx(2 / 3) and b["recall"] == 1.0


def test_node_window_metrics_nan_pa_and_counts() -> None:
    labels = np.zeros((10, 2), np.uint8)
    labels[3:7, 0] = 1  # one run of 4 positive windows on node 0
    scores = np.zeros((10, 2))
    scores[:, 1] = 0.5
    scores[4, 0] = 2.0  # the run is hit once
    scores[8, 0] = 1.0  # a false alarm above the other positives
    scores[9, 1] = np.nan  # unscored valid cell
    valid = np.ones((10, 2), bool)
    valid[0, 1] = False
    m = node_window_metrics(scores, labels, valid)
    assert m["positives"] == 4 and m["negatives"] == 15 and m["unscored"] == 1
    # without PA: best is thr 2.0 → TP 1 FP 0 FN 3 → F1 = 2/5
    assert m["f1"] == pytest.approx(0.4)
    # with PA the whole run counts at thr 2.0 → TP 4 FP 0 → 1.0
    assert m["pa_f1"] == pytest.approx(1.0) and m["pa_f1"] >= m["f1"]
    assert m["auroc"] == pytest.approx(
        roc_auc_score(labels[valid], np.nan_to_num(scores[valid], nan=-1e9))
    )


def _ws(w: int) -> np.ndarray:
    return T0 + WMS * np.arange(w, dtype=np.int64)


def test_event_detection_delay_false_alarms() -> None:
    w = 40
    ws = _ws(w)
    scores = np.zeros((w, 2))
    valid = np.ones((w, 2), bool)
    ev1 = {"start_ms": T0 + 10 * WMS + 5000, "end_ms": T0 + 15 * WMS, "root_cause": "a"}
    ev2 = {"start_ms": T0 + 25 * WMS, "end_ms": T0 + 28 * WMS, "root_cause": "b"}
    ev3 = {"start_ms": T0 + 100 * WMS, "end_ms": T0 + 101 * WMS}  # outside: not observable
    scores[12, 1] = 5.0  # detects ev1: window 12 starts 15 s after its start
    scores[16, 0] = 5.0  # inside ev1's grace (end 15 + 2 windows) → counts as in-event
    scores[9, 0] = 5.0  # the pre-window of ev1: neither right nor wrong
    scores[35, 0] = 5.0  # false alarm in a fault-free window
    valid[25:28] = False  # ev2's own windows have no data, but its grace windows do
    r = event_metrics(scores, valid, ws, WMS, [ev1, ev2, ev3], threshold=1.0)
    a = r["at_threshold"]
    assert a["observable"] == 2 and a["not_observable"] == 1 and a["detected"] == 1
    assert a["recall"] == pytest.approx(0.5)
    assert a["per_event"][0]["delay_s"] == pytest.approx(15.0)
    assert a["alarms_before_events"] == 1 and a["alarms_in_events"] == 2
    assert a["precision"] == pytest.approx(2 / 3)
    # fault-free windows with data: 40 − zone(ev1: 9..16) − zone(ev2: 24..29, of which 25..27
    # have no data anyway) = 40 − 8 − 6 = 26 windows
    assert a["fault_free_hours"] == pytest.approx(26 * 10 / 3600)
    assert a["false_alarms"] == 1
    assert a["false_alarms_per_hour"] == pytest.approx(1 / (26 * 10 / 3600))
    assert a["f1"] == pytest.approx(2 * (2 / 3) * 0.5 / (2 / 3 + 0.5))
    # the oracle threshold cannot do better here (all alarms share one score) but must exist
    assert r["best_oracle"]["f1"] == pytest.approx(a["f1"])


def test_event_no_fault_free_windows_is_null() -> None:
    ws = _ws(5)
    ev = {"start_ms": T0, "end_ms": T0 + 5 * WMS}
    r = event_metrics(np.ones((5, 1)), np.ones((5, 1), bool), ws, WMS, [ev], threshold=0.5)
    a = r["at_threshold"]
    assert a["fault_free_hours"] is None and a["false_alarms_per_hour"] is None
    assert a["detected"] == 1 and a["per_event"][0]["delay_s"] == 0.0


def test_best_event_f1_beats_bad_threshold() -> None:
    w = 30
    scores = np.zeros((w, 1))
    scores[5, 0] = 3.0  # detects the event
    scores[20, 0] = 2.0  # false alarm with a lower score
    ev = {"start_ms": T0 + 5 * WMS, "end_ms": T0 + 6 * WMS}
    r = event_metrics(scores, np.ones((w, 1), bool), _ws(w), WMS, [ev], threshold=1.0)
    assert r["at_threshold"]["precision"] == pytest.approx(0.5)
    assert r["best_oracle"]["f1"] == pytest.approx(1.0)
    assert r["best_oracle"]["threshold"] == pytest.approx(3.0)


def test_threshold_from_train() -> None:
    s = np.array([[1.0, 5.0], [2.0, np.nan], [3.0, 0.0], [np.nan, np.nan]])
    v = np.ones_like(s, bool)
    v[0, 1] = False  # the 5.0 does not count
    # window maxima 1, 2, 3 (window 3 unscored, left out)
    assert threshold_from_train(s, v, quantile=1.0) == 3.0
    assert threshold_from_train(s, v, quantile=0.5) == 2.0

"""evaluate/rootcause.py: rank rules, AC@k on a constructed ranking, PPR on a call chain."""

from __future__ import annotations

import numpy as np
import pytest
from test_timeline import WMS, F, make_timeline

from meshwatch_training.evaluate.rootcause import (
    personalized_pagerank,
    ppr_ranking,
    rank_of,
    root_cause_metrics,
)

T0 = 1_700_000_000_000


def test_rank_of_ties_pessimistic_and_missing() -> None:
    s = np.array([0.9, 0.5, 0.5, 0.1])
    cand = np.array([True, True, True, False])
    assert rank_of(s, cand, 0) == 1
    assert rank_of(s, cand, 1) == 3  # tied with node 2: counted after it
    assert rank_of(s, cand, 3) is None  # not a candidate
    assert rank_of(s, cand, -1) is None


def test_ppr_chain_root_cause_downstream() -> None:
    # frontend → middle → db-like leaf; all three anomalous, the caller the most (it waits)
    scores = np.array([5.0, 4.0, 3.0])
    edge_index = np.array([[0, 1], [1, 2]])
    key = ppr_ranking(scores, np.ones(3, bool), edge_index, np.ones(2, bool), threshold=1.0)
    order = np.argsort(-key).tolist()
    assert order[0] == 2, order  # mass flows caller → callee and stays at the leaf
    assert np.argsort(-scores).tolist()[0] == 0  # the plain score ranking gets it wrong
    # the stationary solution of π = (1 − d) r + d Pᵀ π holds
    adj = np.array([[0, 4.0, 0], [0, 0, 3.0], [0, 0, 0]])
    r = np.array([5.0, 4.0, 3.0]) / 12
    pi = personalized_pagerank(adj, r, damping=0.85)
    p = np.array([[0, 1, 0], [0, 0, 1], [0, 0, 1.0]])
    np.testing.assert_allclose(pi, 0.15 * r + 0.85 * p.T @ pi, atol=1e-10)
    assert pi.sum() == pytest.approx(1.0)


def test_inactive_edges_are_not_walked() -> None:
    scores = np.array([5.0, 4.0, 3.0])
    edge_index = np.array([[0, 1], [1, 2]])
    key = ppr_ranking(scores, np.ones(3, bool), edge_index, np.zeros(2, bool), threshold=1.0)
    assert np.argsort(-key).tolist() == [0, 1, 2]  # no edges: PPR = restart = score order


def test_root_cause_metrics_ac_at_k() -> None:
    # 4 events over 40 windows, 5 service nodes + 1 user node; the root cause gets rank 1, 2, 4
    # and "unknown" (no such node) → AC@1 = 1/4, AC@3 = 2/4, AC@5 = 3/4
    w, n = 40, 6
    x = np.zeros((w, n, F), np.float32)
    x[:, :, 6] = 1.0  # requests_per_s > 0: windows with spans
    kind = np.array([0, 0, 0, 0, 0, 1])
    names = ["a", "b", "c", "d", "e", "user"]
    tl = make_timeline(x, node_names=names, node_kind=kind)
    scores = np.zeros((w, n))
    scores[:, 5] = 100.0  # the user node is no candidate however high it scores
    events = []
    for k, (rc, order) in enumerate(
        [("a", [0, 1, 2, 3, 4]), ("b", [0, 1, 2, 3, 4]), ("e", [0, 1, 2, 4, 3]), ("zz", [0])]
    ):
        s0 = 8 * k + 1
        for rank, node in enumerate(order):
            scores[s0, node] = 10.0 - rank
        events.append(
            {"start_ms": T0 + s0 * WMS, "end_ms": T0 + (s0 + 1) * WMS, "root_cause": rc,
             "fault_type": "cpu" if k < 2 else "latency"}
        )  # fmt: skip
    events.append({"start_ms": T0 + 500 * WMS, "end_ms": T0 + 501 * WMS, "root_cause": "a"})
    valid = np.ones((w, n), bool)
    r = root_cause_metrics(scores, valid, tl, events, grace_windows=0)
    sc = r["score"]
    assert r["not_observable"] == 1 and sc["events"] == 4 and sc["not_ranked"] == 1
    assert [e["rank_score"] for e in r["per_event"]] == [1, 2, 4, None]
    assert sc["ac@1"] == 0.25 and sc["ac@3"] == 0.5 and sc["ac@5"] == 0.75
    assert sc["avg@5"] == pytest.approx((0.25 + 0.5 + 0.5 + 0.75 + 0.75) / 5)
    assert r["by_fault_type"]["cpu"]["score"]["ac@1"] == 0.5
    assert r["by_fault_type"]["latency"]["score"]["ac@1"] == 0.0
    # no edges: the PPR ranking orders by score too
    assert [e["rank_ppr"] for e in r["per_event"]] == [1, 2, 4, None]

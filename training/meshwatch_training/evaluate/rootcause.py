"""Root-cause ranking accuracy: AC@k and Avg@5, from node scores and from a propagation-aware
personalised PageRank over the anomalous call subgraph."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .metrics import _event_spans

KS = (1, 2, 3, 4, 5)


def rank_of(order_scores: np.ndarray, candidates: np.ndarray, true_idx: int) -> int | None:
    """1-based rank of node ``true_idx`` among ``candidates`` [N] bool by ``order_scores`` [N]
    (higher first). Ties are counted pessimistically: rank = 1 + #candidates scoring strictly more
    + #other candidates scoring the same. None when the node is no candidate."""
    if true_idx < 0 or not candidates[true_idx]:
        return None
    s = np.where(np.isnan(order_scores), -np.inf, order_scores)
    c = candidates.copy()
    c[true_idx] = False
    return 1 + int((s[c] >= s[true_idx]).sum())


def personalized_pagerank(
    adjacency: np.ndarray,
    restart: np.ndarray,
    damping: float = 0.85,
    tol: float = 1e-12,
    max_iter: int = 1000,
) -> np.ndarray:
    """Personalised PageRank by power iteration.

    ``adjacency [n, n]``: non-negative weights, ``adjacency[u, v]`` = weight of the step u → v.
    Row-normalised into the transition matrix P (P[u, v] = A[u, v] / Σ_v' A[u, v']); a row
    without out-weight (a dangling node) gets a self-loop, so a walk that reaches a node with
    nowhere further to go stays there (this is what lets mass gather on a downstream root cause).
    ``restart [n]``: the restart (personalisation) distribution, normalised to sum 1 (uniform if
    it sums to 0). Iterates

        π_{i+1} = (1 − d) · r + d · Pᵀ π_i,    π_0 = r,

    until ‖π_{i+1} − π_i‖₁ < tol; returns π (sums to 1).
    """
    a = np.asarray(adjacency, dtype=np.float64)
    n = a.shape[0]
    if n == 0:
        return np.zeros(0)
    a = a.copy()
    row = a.sum(axis=1)
    dangling = row <= 0
    a[dangling, dangling] = 1.0
    p = a / a.sum(axis=1, keepdims=True)
    r = np.clip(np.asarray(restart, dtype=np.float64), 0, None)
    r = r / r.sum() if r.sum() > 0 else np.full(n, 1.0 / n)
    pi = r.copy()
    for _ in range(max_iter):
        nxt = (1 - damping) * r + damping * (p.T @ pi)
        if np.abs(nxt - pi).sum() < tol:
            pi = nxt
            break
        pi = nxt
    return pi


def ppr_ranking(
    event_scores: np.ndarray,
    candidates: np.ndarray,
    edge_index: np.ndarray,
    active_edges: np.ndarray,
    threshold: float | None = None,
    top_k: int = 3,
    damping: float = 0.85,
    eps: float = 1e-6,
) -> np.ndarray:
    """Propagation-aware ordering scores: higher = ranked first.

    The anomalous set A = candidates with ``score >= threshold`` plus the ``top_k`` best-scored
    candidates (only the top-k without a threshold). The subgraph has A's nodes and the active
    call edges (``active_edges`` [E] bool, weight > 0 in the event's windows) with both ends in A.
    A fault shows on its root cause and on the callers that wait for it, so the walk goes
    caller → callee: A[u, v] = max(s_v, 0) + eps for an edge u → v (prefer the more anomalous
    callee), and restarts at r_u ∝ max(s_u, 0) + eps. The PPR mass (:func:`personalized_pagerank`,
    damping d) orders A; ties by score. Candidates outside A follow, by score.

    Returns [N] float ordering keys (higher = ranked first): N_c − position for the N_c candidates
    of the final order, −inf for non-candidates, so :func:`rank_of` on the keys gives each
    node's position in this ranking.
    """
    s = np.where(np.isnan(event_scores), -np.inf, np.asarray(event_scores, dtype=np.float64))
    n = s.size
    cand = np.flatnonzero(candidates)
    if cand.size == 0:
        return np.full(n, -np.inf)
    by_score = cand[np.argsort(-s[cand], kind="mergesort")]
    in_a = np.zeros(n, dtype=bool)
    in_a[by_score[:top_k]] = True
    if threshold is not None:
        in_a[cand[s[cand] >= threshold]] = True
    nodes = np.flatnonzero(in_a)
    pos = {int(u): i for i, u in enumerate(nodes)}
    sv = np.clip(np.where(np.isfinite(s[nodes]), s[nodes], 0.0), 0, None) + eps
    adj = np.zeros((nodes.size, nodes.size))
    for e in np.flatnonzero(active_edges):
        u, v = int(edge_index[0, e]), int(edge_index[1, e])
        if u in pos and v in pos and u != v:
            adj[pos[u], pos[v]] = sv[pos[v]]
    mass = personalized_pagerank(adj, sv, damping=damping)
    # order: A by (mass desc, score desc), then the other candidates by score desc
    a_order = sorted(range(nodes.size), key=lambda i: (-mass[i], -s[nodes[i]]))
    rest = [int(u) for u in by_score if not in_a[u]]
    order = [int(nodes[i]) for i in a_order] + rest
    key = np.full(n, -np.inf)
    for p, u in enumerate(order):
        key[u] = float(len(order) - p)
    return key


def _summary(ranks: list[int | None]) -> dict[str, Any]:
    n = len(ranks)
    out: dict[str, Any] = {"events": n, "not_ranked": sum(r is None for r in ranks)}
    for k in KS:
        out[f"ac@{k}"] = (sum(r is not None and r <= k for r in ranks) / n) if n else float("nan")
    out["avg@5"] = float(np.mean([out[f"ac@{k}"] for k in KS])) if n else float("nan")
    return out


def root_cause_metrics(
    scores: np.ndarray,
    valid: np.ndarray,
    timeline: Any,
    events: Sequence[dict],
    threshold: float | None = None,
    grace_windows: int = 2,
    top_k: int = 3,
    damping: float = 0.85,
) -> dict[str, Any]:
    """AC@k (k = 1..5) and Avg@5 of two root-cause rankings over the observable events.

    For each event, its windows are those overlapping ``[start_ms, end_ms + grace_windows·window)``
    (the event span of :func:`~.metrics.event_metrics`) with some valid cell; an event without
    one is not observable and left out (``not_observable``). Candidates = service nodes
    (``timeline.service_nodes``) with a valid cell in those windows. The event score of a node
    is its max score over those windows (NaN → −inf).

    * ``score`` ranking: by event score, ties pessimistic (:func:`rank_of`);
    * ``ppr`` ranking: :func:`ppr_ranking` over the call edges active (weight > 0) in the event
      windows, with ``threshold`` (e.g. from :func:`~.metrics.threshold_from_train`) and ``top_k``.

    AC@k = #(events whose true root cause has rank ≤ k) / #observable events; a root cause that is
    not a candidate (absent, not a service, or unknown name) is unranked and counts as a miss in
    every AC@k (``not_ranked``). For an event with several root-cause entries (two labels with
    the same span) each label is one event. Avg@5 = mean(AC@1..AC@5). Also per fault type.
    """
    v = np.asarray(valid, dtype=bool)
    s = np.where(np.isnan(scores), -np.inf, np.asarray(scores, dtype=np.float64))
    span, _ = _event_spans(
        timeline.window_start_ms, int(timeline.window_ms), events, grace_windows, 0
    )
    service = timeline.service_nodes
    ranks: dict[str, list[int | None]] = {"score": [], "ppr": []}
    by_type: dict[str, dict[str, list[int | None]]] = {}
    per_event = []
    not_observable = 0
    for k, ev in enumerate(events):
        wins = np.flatnonzero(span[k] & v.any(axis=1))
        if wins.size == 0:
            not_observable += 1
            continue
        cell = v[wins]
        cand = service & cell.any(axis=0)
        ev_score = np.where(cell, s[wins], -np.inf).max(axis=0)
        true_idx = timeline.node_index(str(ev.get("root_cause", "")))
        active = (timeline.edge_weight[wins] > 0).any(axis=0)
        key = ppr_ranking(ev_score, cand, timeline.edge_index, active, threshold, top_k, damping)
        r_score = rank_of(ev_score, cand, true_idx)
        r_ppr = rank_of(key, cand, true_idx)
        ranks["score"].append(r_score)
        ranks["ppr"].append(r_ppr)
        ft = str(ev.get("fault_type", ""))
        by_type.setdefault(ft, {"score": [], "ppr": []})
        by_type[ft]["score"].append(r_score)
        by_type[ft]["ppr"].append(r_ppr)
        per_event.append(
            {
                "start_ms": int(ev["start_ms"]),
                "root_cause": ev.get("root_cause"),
                "fault_type": ft,
                "rank_score": r_score,
                "rank_ppr": r_ppr,
                "candidates": int(cand.sum()),
            }
        )
    return {
        "not_observable": not_observable,
        "score": _summary(ranks["score"]),
        "ppr": _summary(ranks["ppr"]),
        "by_fault_type": {
            ft: {"score": _summary(r["score"]), "ppr": _summary(r["ppr"])}
            for ft, r in sorted(by_type.items())
        },
        "per_event": per_event,
    }

"""One graph's whole dataset as one aligned timeline (for evaluation and baselines).

``meshwatch dataset build`` cuts a graph's windows into shards (docs/dataset-format.md): each shard
has its own node and edge sets, consecutive shards of a segment repeat ``overlap`` windows, and a
gap of ``--steps`` or more windows without spans starts a new segment (the windows of the gap are
in no shard). :func:`load_timeline` undoes that:

* **de-overlap**: of a shard that continues its segment, the first ``overlap`` windows are
  dropped (they repeat the previous shard's last windows, the ``overlap`` rule of the format);
* **alignment by node name**: the timeline's nodes are the union of the shards' ``node_names``,
  sorted (Python ``str`` order is code-point order, the byte order of UTF-8 the Rust side sorts
  by); edges are the union of the shards' (caller name, callee name) pairs, sorted; every array is
  remapped to these indices and a node or edge a shard does not have is absent there (features 0,
  ``node_mask`` 0, ``edge_weight`` 0, ``target_mask`` 0, root-cause label 0);
* **gaps between segments**: a gap of at most ``fill_gaps_up_to`` missing windows is filled with
  masked steps (``step_mask`` 0, nothing present, ``segment`` -1), exactly what the Rust side
  writes for a shorter gap inside a segment; a longer gap is kept out, so ``window_start`` is then
  NOT contiguous. Consumers must therefore never assume that index ``w - k`` is ``k`` windows
  before ``w``: use :meth:`Timeline.history` / :meth:`Timeline.window_index`, which look windows
  up on the grid (``window_start_ms[w] - k * window_ms``) and answer -1 for a grid window that is
  not in the timeline.

Window kinds. ``step_mask`` 1 means the window had a snapshot with nodes or edges (spans **or**
metric samples: with ``--metrics`` a window of resource samples alone is observed). ``has_spans``
is stricter: the window is observed and some node has ``requests_per_s > 0`` or
``out_calls_per_s > 0`` or some edge carried a call. On Nezha, whose traces cover only the
minutes around each fault but whose metrics cover the whole day, most observed windows have no
trace data; detectors and metrics should count only ``has_spans`` windows for trace features.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

import numpy as np

from .data import Dataset

_KIND_SERVICE = "service"


@dataclass
class Timeline:
    """One graph's windows on the window grid, nodes and edges aligned by name.

    Shapes: W windows, N nodes, E edges, F node features, Fe edge features, M targets, K fault
    types. Window starts are sorted and unique; see the module docstring for gaps.
    """

    graph: str
    window_ms: int
    window_start: np.ndarray  # [W] i64, Unix seconds (floored)
    window_start_ms: np.ndarray  # [W] i64, Unix ms
    step_mask: np.ndarray  # [W] f32, 1 = observed (spans or metric samples)
    segment: np.ndarray  # [W] i64, the dataset segment; -1 for a filled gap window
    node_names: np.ndarray  # [N] str, sorted
    node_kind: np.ndarray  # [N] i64, index in node_kind_names
    node_kind_names: list[str]
    node_feature_names: list[str]
    edge_feature_names: list[str]
    target_names: list[str]
    node_features: np.ndarray  # [W, N, F] f32
    node_mask: np.ndarray  # [W, N] f32
    edge_index: np.ndarray  # [2, E] i64, (caller, callee), sorted by (caller name, callee name)
    edge_weight: np.ndarray  # [W, E] f32
    edge_features: np.ndarray  # [W, E, Fe] f32
    targets: np.ndarray  # [W, N, M] f32, raw
    target_mask: np.ndarray  # [W, N, M] f32
    label_root_cause: np.ndarray | None  # [W, N] u8
    label_any_fault: np.ndarray | None  # [W] u8
    label_fault_type: np.ndarray | None  # [W] i64, -1 without fault
    fault_type_names: list[str]
    has_spans: np.ndarray  # [W] bool

    # ----------------------------------------------------------------------------- helpers
    @property
    def num_windows(self) -> int:
        return int(self.window_start_ms.shape[0])

    @property
    def num_nodes(self) -> int:
        return int(self.node_names.shape[0])

    @property
    def num_edges(self) -> int:
        return int(self.edge_index.shape[1])

    @property
    def window_s(self) -> float:
        return self.window_ms / 1000.0

    @property
    def service_nodes(self) -> np.ndarray:
        """[N] bool: nodes of kind ``service`` (the candidates of root-cause rankings)."""
        if _KIND_SERVICE not in self.node_kind_names:
            return np.zeros(self.num_nodes, dtype=bool)
        return self.node_kind == self.node_kind_names.index(_KIND_SERVICE)

    def node_feature(self, name: str) -> np.ndarray:
        """[W, N] the node feature called ``name`` (KeyError if the schema has none)."""
        if name not in self.node_feature_names:
            raise KeyError(f"no node feature {name!r} in {self.node_feature_names}")
        return self.node_features[:, :, self.node_feature_names.index(name)]

    def node_index(self, name: str) -> int:
        """Index of the node called ``name``, or -1."""
        i = int(np.searchsorted(self.node_names, name))
        return i if i < self.num_nodes and self.node_names[i] == name else -1

    def window_index(self, start: Any, *, ms: bool = False) -> np.ndarray | int:
        """Index of the window starting at ``start`` (Unix seconds, or ms with ``ms=True``).

        Accepts a scalar or an array; answers -1 where no window of the timeline starts there
        (a grid window that is missing, or a time off the grid).
        """
        q = np.asarray(start, dtype=np.int64)
        if not ms:
            q = q * 1000
        if self.num_windows == 0:
            out = np.full(q.shape, -1, dtype=np.int64)
            return int(out) if out.ndim == 0 else out
        pos = np.searchsorted(self.window_start_ms, q)
        pos_c = np.minimum(pos, self.num_windows - 1)
        ok = (pos < self.num_windows) & (self.window_start_ms[pos_c] == q)
        out = np.where(ok, pos_c, -1).astype(np.int64)
        return int(out) if out.ndim == 0 else out

    def history(self, w: int, t: int) -> np.ndarray:
        """[t] indices of the grid windows ``w - t + 1 .. w`` (oldest first), -1 where missing.

        Grid window k steps before ``w`` starts at ``window_start_ms[w] - k * window_ms``; the
        answer is its index in this timeline or -1 if the timeline does not hold it (a gap kept
        out, or before the first window).
        """
        if not 0 <= w < self.num_windows:
            raise IndexError(f"window {w} outside [0, {self.num_windows})")
        k = np.arange(t - 1, -1, -1, dtype=np.int64)
        return self.window_index(self.window_start_ms[w] - k * self.window_ms, ms=True)

    def grid_offset(self, offsets: np.ndarray | int) -> np.ndarray:
        """[W, K] index of the window ``k`` grid steps after each window (negative: before), -1
        where the timeline holds none. ``offsets`` is an int or [K] ints."""
        off = np.atleast_1d(np.asarray(offsets, dtype=np.int64))
        q = self.window_start_ms[:, None] + off[None, :] * self.window_ms
        return self.window_index(q, ms=True)

    def sample(self, w: int, t: int) -> dict[str, np.ndarray]:
        """Contract arrays for a model run on grid windows ``w - t + 1 .. w``.

        Returns node_features [t, N, F], node_mask [t, N], edge_index [2, E], edge_weight [t, E],
        edge_features [t, E, Fe], window_start [t] i64 (Unix s, on the grid even where a window is
        missing), plus step_mask [t], targets [t, N, M], target_mask [t, N, M]. A grid window the
        timeline does not hold is all zeros (mask 0), like a masked step.
        """
        if not 0 <= w < self.num_windows:
            raise IndexError(f"window {w} outside [0, {self.num_windows})")
        return self.sample_at(int(self.window_start_ms[w]), t)

    def sample_at(self, end_ms: int, t: int, spans_only: bool = False) -> dict[str, np.ndarray]:
        """:meth:`sample` for the ``t`` grid windows ending at the window starting ``end_ms``,
        which need not be in the timeline. ``spans_only``: windows without spans (``has_spans``
        false) are zeroed like missing ones."""
        ws_ms = end_ms - np.arange(t - 1, -1, -1, dtype=np.int64) * self.window_ms
        idx = np.asarray(self.window_index(ws_ms, ms=True), dtype=np.int64)
        have = idx >= 0
        src = np.where(have, idx, 0)
        if spans_only:
            have &= self.has_spans[src]

        def take(a: np.ndarray) -> np.ndarray:
            out = a[src].copy()
            out[~have] = 0
            return out

        return {
            "node_features": take(self.node_features),
            "node_mask": take(self.node_mask),
            "edge_index": self.edge_index.copy(),
            "edge_weight": take(self.edge_weight),
            "edge_features": take(self.edge_features),
            "window_start": np.floor_divide(ws_ms, 1000).astype(np.int64),
            "step_mask": take(self.step_mask),
            "targets": take(self.targets),
            "target_mask": take(self.target_mask),
        }

    def select(
        self,
        mask: np.ndarray | None = None,
        *,
        start_s: float | None = None,
        end_s: float | None = None,
    ) -> Timeline:
        """A timeline of the windows where ``mask`` [W] is true and/or whose start is in
        ``[start_s, end_s)`` (Unix seconds). Nodes and edges are kept as they are."""
        keep = np.ones(self.num_windows, dtype=bool)
        if mask is not None:
            mask = np.asarray(mask, dtype=bool)
            if mask.shape != (self.num_windows,):
                raise ValueError(f"mask shape {mask.shape} != ({self.num_windows},)")
            keep &= mask
        keep &= self.time_mask(start_s, end_s)
        changes: dict[str, Any] = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if (
                isinstance(v, np.ndarray)
                and f.name not in ("node_names", "node_kind", "edge_index")
                and v.ndim >= 1
                and v.shape[0] == self.num_windows
            ):
                changes[f.name] = v[keep]
        return replace(self, **changes)

    def time_mask(self, start_s: float | None = None, end_s: float | None = None) -> np.ndarray:
        """[W] bool: windows whose start is in ``[start_s, end_s)`` (Unix seconds, open ends)."""
        keep = np.ones(self.num_windows, dtype=bool)
        if start_s is not None:
            keep &= self.window_start_ms >= round(float(start_s) * 1000)
        if end_s is not None:
            keep &= self.window_start_ms < round(float(end_s) * 1000)
        return keep


def compute_has_spans(
    node_features: np.ndarray,
    edge_weight: np.ndarray,
    step_mask: np.ndarray,
    node_feature_names: list[str],
) -> np.ndarray:
    """[W] bool: observed window with trace data — ``step_mask`` 1 and some node with
    ``requests_per_s > 0`` or ``out_calls_per_s > 0``, or some edge with weight > 0."""
    w = node_features.shape[0]
    any_trace = np.zeros(w, dtype=bool)
    for name in ("requests_per_s", "out_calls_per_s"):
        if name in node_feature_names:
            any_trace |= (node_features[:, :, node_feature_names.index(name)] > 0).any(axis=1)
    if edge_weight.shape[1]:
        any_trace |= (edge_weight > 0).any(axis=1)
    return any_trace & (step_mask > 0)


def load_timeline(dataset: Dataset, graph: str, fill_gaps_up_to: int | None = None) -> Timeline:
    """Load every shard of ``graph`` (its id, as in ``manifest.graphs[].graph``) as one timeline.

    ``fill_gaps_up_to``: a gap between segments of at most this many missing windows is filled
    with masked steps; longer gaps stay out (non-contiguous ``window_start``). Default: 4 × the
    dataset's ``--steps`` (e.g. 64 windows for ``--steps 16``), so short outages read as one
    contiguous grid while a day-long hole costs no memory. 0 never fills.

    A node's kind is taken from the latest shard where the node is present (``node_mask`` 1 in
    some window), else from the latest shard that lists it. Labels are loaded when every shard
    has them (``--labels``), else the label fields are None.
    """
    entry = next((g for g in dataset.graphs if g["graph"] == graph), None)
    if entry is None:
        raise KeyError(
            f"graph {graph!r} not in the dataset ({[g['graph'] for g in dataset.graphs]})"
        )
    if fill_gaps_up_to is None:
        fill_gaps_up_to = 4 * dataset.steps
    window_ms = int(dataset.manifest["window_ms"])
    shard_entries = sorted(entry["shards"], key=lambda s: int(s["first_window_start_ms"]))
    shards = [dataset.load_shard(s) for s in shard_entries]
    if not shards:
        raise ValueError(f"graph {graph!r} has no shards")

    # Which windows of each shard to keep (de-overlap), in order.
    kept: list[np.ndarray] = []
    prev_segment: int | None = None
    last_ms: int | None = None
    for a in shards:
        seg = int(a["segment"])
        first = int(a["overlap"]) if prev_segment == seg else 0
        sl = np.arange(first, a["window_start_ms"].shape[0])
        if last_ms is not None:
            # Safety: never keep a window twice, whatever the metadata says.
            sl = sl[a["window_start_ms"][sl] > last_ms]
        if sl.size:
            last_ms = int(a["window_start_ms"][sl[-1]])
        kept.append(sl)
        prev_segment = seg

    # Node and edge unions (by name).
    node_set: set[str] = set()
    for a in shards:
        node_set.update(str(x) for x in a["node_names"])
    node_names = np.array(sorted(node_set), dtype=str)
    n_idx = {name: i for i, name in enumerate(node_names.tolist())}
    edge_set: set[tuple[str, str]] = set()
    for a in shards:
        names = [str(x) for x in a["node_names"]]
        ei = a["edge_index"]
        edge_set.update((names[int(c)], names[int(d)]) for c, d in zip(ei[0], ei[1], strict=False))
    edges = sorted(edge_set)
    e_idx = {pair: i for i, pair in enumerate(edges)}
    edge_index = np.array(
        [[n_idx[c] for c, _ in edges], [n_idx[d] for _, d in edges]], dtype=np.int64
    ).reshape(2, len(edges))

    # The window grid: kept windows + filled small gaps.
    ms_parts = [a["window_start_ms"][k] for a, k in zip(shards, kept, strict=False)]
    seg_parts = [
        np.full(k.size, int(a["segment"]), dtype=np.int64)
        for a, k in zip(shards, kept, strict=False)
    ]
    all_ms = np.concatenate(ms_parts).astype(np.int64)
    all_seg = np.concatenate(seg_parts)
    if all_ms.size > 1 and fill_gaps_up_to > 0:
        steps = np.diff(all_ms) // window_ms
        fill_ms = []
        for i in np.nonzero((steps > 1) & (steps - 1 <= fill_gaps_up_to))[0]:
            fill_ms.append(all_ms[i] + window_ms * np.arange(1, int(steps[i]), dtype=np.int64))
        if fill_ms:
            extra = np.concatenate(fill_ms)
            all_ms = np.concatenate([all_ms, extra])
            all_seg = np.concatenate([all_seg, np.full(extra.size, -1, dtype=np.int64)])
            order = np.argsort(all_ms, kind="stable")
            all_ms, all_seg = all_ms[order], all_seg[order]
    w_total = all_ms.size
    pos_of_ms = {int(m): i for i, m in enumerate(all_ms.tolist())}

    a0 = shards[0]
    f = a0["node_features"].shape[2]
    fe = a0["edge_features"].shape[2]
    m = a0["targets"].shape[2]
    n, e = len(node_names), len(edges)
    has_labels = all("label_root_cause" in a for a in shards)

    node_features = np.zeros((w_total, n, f), dtype=np.float32)
    node_mask = np.zeros((w_total, n), dtype=np.float32)
    edge_weight = np.zeros((w_total, e), dtype=np.float32)
    edge_features = np.zeros((w_total, e, fe), dtype=np.float32)
    targets = np.zeros((w_total, n, m), dtype=np.float32)
    target_mask = np.zeros((w_total, n, m), dtype=np.float32)
    step_mask = np.zeros(w_total, dtype=np.float32)
    label_rc = np.zeros((w_total, n), dtype=np.uint8) if has_labels else None
    label_any = np.zeros(w_total, dtype=np.uint8) if has_labels else None
    label_ft = np.full(w_total, -1, dtype=np.int64) if has_labels else None
    node_kind = np.zeros(n, dtype=np.int64)
    kind_present = np.zeros(n, dtype=bool)

    for a, k in zip(shards, kept, strict=False):
        names = [str(x) for x in a["node_names"]]
        nmap = np.array([n_idx[x] for x in names], dtype=np.int64)
        ei = a["edge_index"]
        emap = np.array(
            [e_idx[(names[int(c)], names[int(d)])] for c, d in zip(ei[0], ei[1], strict=False)],
            dtype=np.int64,
        )
        # Node kind: later shards overwrite; prefer shards where the node is present.
        present = (a["node_mask"] > 0).any(axis=0)
        for j, gi in enumerate(nmap):
            if present[j] or not kind_present[gi]:
                node_kind[gi] = int(a["node_kind"][j])
                kind_present[gi] |= bool(present[j])
        if k.size == 0:
            continue
        rows = np.array([pos_of_ms[int(x)] for x in a["window_start_ms"][k]], dtype=np.int64)
        step_mask[rows] = a["step_mask"][k]
        node_features[np.ix_(rows, nmap)] = a["node_features"][k]
        node_mask[np.ix_(rows, nmap)] = a["node_mask"][k]
        targets[np.ix_(rows, nmap)] = a["targets"][k]
        target_mask[np.ix_(rows, nmap)] = a["target_mask"][k]
        if emap.size:
            edge_weight[np.ix_(rows, emap)] = a["edge_weight"][k]
            edge_features[np.ix_(rows, emap)] = a["edge_features"][k]
        if has_labels:
            label_rc[np.ix_(rows, nmap)] = a["label_root_cause"][k]
            label_any[rows] = a["label_any_fault"][k]
            label_ft[rows] = a["label_fault_type"][k]

    node_feature_names = [str(x) for x in a0["node_feature_names"]]
    fault_types = dataset.manifest.get("fault_types")
    if fault_types is None and has_labels:
        fault_types = [str(x) for x in a0["fault_type_names"]]
    has_spans = compute_has_spans(node_features, edge_weight, step_mask, node_feature_names)
    return Timeline(
        graph=graph,
        window_ms=window_ms,
        window_start=np.floor_divide(all_ms, 1000).astype(np.int64),
        window_start_ms=all_ms,
        step_mask=step_mask,
        segment=all_seg,
        node_names=node_names,
        node_kind=node_kind,
        node_kind_names=[str(x) for x in a0["node_kind_names"]],
        node_feature_names=node_feature_names,
        edge_feature_names=[str(x) for x in a0["edge_feature_names"]],
        target_names=[str(x) for x in a0["target_names"]],
        node_features=node_features,
        node_mask=node_mask,
        edge_index=edge_index,
        edge_weight=edge_weight,
        edge_features=edge_features,
        targets=targets,
        target_mask=target_mask,
        label_root_cause=label_rc,
        label_any_fault=label_any,
        label_fault_type=label_ft,
        fault_type_names=list(fault_types or []),
        has_spans=has_spans,
    )

"""timeline.py: one graph's shards as one aligned window grid.

Synthetic datasets are written here with numpy exactly as `meshwatch dataset build` writes them
(docs/dataset-format.md); one test reads a dataset the real CLI builds from the committed
Nezha raw fixture (MESHWATCH_BIN, as test_data.py: it fails, never skips, without it).
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess

import numpy as np
import pytest

from meshwatch_training.data import Dataset
from meshwatch_training.timeline import Timeline, load_timeline

REPO = pathlib.Path(__file__).resolve().parents[2]

NODE_FEATURES = [
    "kind_service", "kind_user", "kind_database", "kind_messaging", "kind_peer", "kind_overflow",
    "requests_per_s", "error_ratio", "latency_p50_ms", "latency_p90_ms", "latency_p99_ms",
    "out_calls_per_s", "out_error_ratio", "out_latency_p90_ms", "in_gap_p50_ms", "in_gap_p90_ms",
    "in_gap_present", "cpu_utilization", "cpu_utilization_present", "memory_bytes",
    "memory_bytes_present", "memory_utilization", "memory_utilization_present",
    "network_rx_bytes_per_s", "network_rx_bytes_per_s_present", "network_tx_bytes_per_s",
    "network_tx_bytes_per_s_present", "restarts", "restarts_present",
]  # fmt: skip
EDGE_FEATURES = [
    "calls_per_s", "error_ratio", "paired_ratio", "client_latency_p90_ms",
    "server_latency_p90_ms", "gap_p50_ms", "gap_p90_ms", "conn_direct", "conn_entry",
    "conn_database", "conn_messaging", "conn_virtual_peer",
]  # fmt: skip
TARGETS = ["request_rate", "latency_p90_ms", "latency_p99_ms", "error_ratio"]
KINDS = ["service", "user", "database", "messaging", "peer", "overflow"]
F, FE, M = len(NODE_FEATURES), len(EDGE_FEATURES), len(TARGETS)
WMS = 10_000
T0_MS = 1_700_000_000_000
CODE = {"a": 1, "b": 2, "c": 3, "user": 4}


def make_timeline(
    node_features: np.ndarray,
    node_mask: np.ndarray | None = None,
    node_names: list[str] | None = None,
    edges: list[tuple[int, int]] = (),
    window_ms: int = WMS,
    start_ms: int = T0_MS,
    window_start_ms: np.ndarray | None = None,
    targets: np.ndarray | None = None,
    target_mask: np.ndarray | None = None,
    node_kind: np.ndarray | None = None,
    label_root_cause: np.ndarray | None = None,
    edge_weight: np.ndarray | None = None,
) -> Timeline:
    """A Timeline built in memory (for the evaluation tests). ``node_features`` [W, N, F]."""
    w, n, _ = node_features.shape
    ws = (
        start_ms + window_ms * np.arange(w, dtype=np.int64)
        if window_start_ms is None
        else np.asarray(window_start_ms, dtype=np.int64)
    )
    mask = np.ones((w, n), np.float32) if node_mask is None else node_mask.astype(np.float32)
    e = len(edges)
    ei = np.array(list(edges), dtype=np.int64).T.reshape(2, e)
    ew = np.ones((w, e), np.float32) if edge_weight is None else edge_weight
    step = np.ones(w, np.float32)
    from meshwatch_training.timeline import compute_has_spans

    return Timeline(
        graph="g",
        window_ms=window_ms,
        window_start=ws // 1000,
        window_start_ms=ws,
        step_mask=step,
        segment=np.zeros(w, np.int64),
        node_names=np.array(node_names or [f"s{i}" for i in range(n)]),
        node_kind=np.zeros(n, np.int64) if node_kind is None else node_kind,
        node_kind_names=list(KINDS),
        node_feature_names=list(NODE_FEATURES),
        edge_feature_names=list(EDGE_FEATURES),
        target_names=list(TARGETS),
        node_features=node_features.astype(np.float32),
        node_mask=mask,
        edge_index=ei,
        edge_weight=ew,
        edge_features=np.zeros((w, e, FE), np.float32),
        targets=np.zeros((w, n, M), np.float32) if targets is None else targets,
        target_mask=np.ones((w, n, M), np.float32) if target_mask is None else target_mask,
        label_root_cause=label_root_cause,
        label_any_fault=None if label_root_cause is None else label_root_cause.max(axis=1),
        label_fault_type=None,
        fault_type_names=[],
        has_spans=compute_has_spans(node_features, ew, step, NODE_FEATURES),
    )


# ------------------------------------------------------------------ synthetic dataset on disk
def _node_value(w: int, name: str) -> np.ndarray:
    """Feature row of node ``name`` in global window ``w``: distinct per (w, name, f)."""
    return (w * 10 + CODE[name] + np.arange(F) / 8).astype(np.float32)


def _edge_value(w: int, caller: str, callee: str) -> np.ndarray:
    return (w * 100 + CODE[caller] * 10 + CODE[callee] + np.arange(FE) / 8).astype(np.float32)


def _write_shard(
    root: pathlib.Path,
    file: str,
    segment: int,
    overlap: int,
    windows: list[int],
    nodes: list[str],
    edges: list[tuple[str, str]],
    masked: set[int],
    metrics_only: set[int],
    fault: dict[int, str],
) -> dict:
    """One shard as the Rust writer lays it out. ``windows``: global window numbers."""
    t, n, e = len(windows), len(nodes), len(edges)
    nodes = sorted(nodes)
    edges = sorted(edges)
    idx = {x: i for i, x in enumerate(nodes)}
    x = np.zeros((t, n, F), np.float32)
    nm = np.zeros((t, n), np.float32)
    ew = np.zeros((t, e), np.float32)
    ef = np.zeros((t, e, FE), np.float32)
    tg = np.zeros((t, n, M), np.float32)
    tm = np.zeros((t, n, M), np.float32)
    rc = np.zeros((t, n), np.uint8)
    step = np.ones(t, np.float32)
    for i, w in enumerate(windows):
        if w in masked:
            step[i] = 0
            continue
        for name in nodes:
            if w not in PRESENT[name]:
                continue
            j = idx[name]
            nm[i, j] = 1
            if w in metrics_only:
                x[i, j, NODE_FEATURES.index("cpu_utilization")] = 0.5
                x[i, j, NODE_FEATURES.index("cpu_utilization_present")] = 1
            else:
                x[i, j] = _node_value(w, name)
                tg[i, j] = w + CODE[name] / 10
                tm[i, j] = 1
        if w not in metrics_only:
            for k, (c, d) in enumerate(edges):
                if w not in PRESENT[c] or w not in PRESENT[d]:
                    continue
                ew[i, k] = 1
                ef[i, k] = _edge_value(w, c, d)
        if w in fault:
            rc[i, idx[fault[w]]] = 1
    a = {
        "feature_schema_version": np.array(1, np.int64),
        "format_version": np.array(1, np.int64),
        "graph": np.array("shop"),
        "window_ms": np.array(WMS, np.int64),
        "segment": np.array(segment, np.int64),
        "overlap": np.array(overlap, np.int64),
        "node_names": np.array(nodes),
        "node_kind": np.array([1 if x_ == "user" else 0 for x_ in nodes], np.int64),
        "node_kind_names": np.array(KINDS),
        "node_feature_names": np.array(NODE_FEATURES),
        "edge_feature_names": np.array(EDGE_FEATURES),
        "target_names": np.array(TARGETS),
        "node_features": x,
        "node_mask": nm,
        "edge_index": np.array(
            [[idx[c] for c, _ in edges], [idx[d] for _, d in edges]], np.int64
        ).reshape(2, e),
        "edge_weight": ew,
        "edge_features": ef,
        "window_start": (T0_MS + WMS * np.array(windows, np.int64)) // 1000,
        "window_start_ms": T0_MS + WMS * np.array(windows, np.int64),
        "step_mask": step,
        "targets": tg,
        "target_mask": tm,
        "label_root_cause": rc,
        "label_any_fault": rc.max(axis=1),
        "label_fault_type": np.where(rc.max(axis=1) > 0, 0, -1).astype(np.int64),
        "fault_type_names": np.array(["latency"]),
    }
    path = root / file
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **a)
    return {
        "file": file,
        "segment": segment,
        "first_window_start_ms": int(T0_MS + WMS * windows[0]),
        "steps": t,
        "observed_steps": int(step.sum()),
        "overlap": overlap,
        "nodes": n,
        "edges": e,
    }


STEPS = 3
# Segment 0: windows 0..8 in two shards overlapping by T − 1 = 2 windows (4, 5); node b is
# present until window 5, c from window 6, so shard 0 lacks c and shard 1 has both (its overlap
# windows repeat b). Window 7 is a masked step, window 3 has metrics only. Segment 1 after a gap
# of 3 (≥ T) windows without spans: windows 12, 13 with a, b and user.
PRESENT = {"a": set(range(14)), "user": set(range(14)), "b": {0, 1, 2, 3, 4, 5, 12, 13},
           "c": {6, 7, 8}}  # fmt: skip
SHARDS = [
    dict(segment=0, overlap=0, windows=list(range(0, 6)), nodes=["a", "b", "user"],
         edges=[("user", "a"), ("a", "b")]),
    dict(segment=0, overlap=2, windows=list(range(4, 9)), nodes=["a", "b", "c", "user"],
         edges=[("user", "a"), ("a", "b"), ("a", "c")]),
    dict(segment=1, overlap=0, windows=[12, 13], nodes=["a", "b", "user"],
         edges=[("user", "a"), ("a", "b")]),
]  # fmt: skip
MASKED, METRICS_ONLY = {7}, {3}


@pytest.fixture()
def synthetic_dir(tmp_path: pathlib.Path) -> pathlib.Path:
    entries = []
    fault = {12: "b", 8: "c"}
    for k, sh in enumerate(SHARDS):
        entries.append(
            _write_shard(
                tmp_path,
                f"graphs/000-shop/shard-{k:05d}.npz",
                masked=MASKED,
                metrics_only=METRICS_ONLY,
                fault={w: n for w, n in fault.items() if n in sh["nodes"]},
                **sh,
            )
        )
    manifest = {
        "format": "meshwatch.dataset",
        "format_version": 1,
        "feature_schema_version": 1,
        "node_features": NODE_FEATURES,
        "edge_features": EDGE_FEATURES,
        "targets": TARGETS,
        "node_kinds": KINDS,
        "fault_types": ["latency"],
        "window_ms": WMS,
        "steps": STEPS,
        "shard_steps": 6,
        "producer": "test",
        "inputs": {},
        "totals": {},
        "graphs": [
            {
                "graph": "shop",
                "dir": "graphs/000-shop",
                "windows_observed": 10,
                "windows_missing": 1,
                "segments": 2,
                "faults": 2,
                "unmatched_root_causes": [],
                "shards": entries,
            }
        ],
        "labels_without_data": [],
    }
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    return tmp_path


def test_alignment_overlap_and_names(synthetic_dir: pathlib.Path) -> None:
    tl = load_timeline(Dataset(synthetic_dir), "shop", fill_gaps_up_to=0)
    assert tl.node_names.tolist() == ["a", "b", "c", "user"]
    names = tl.node_names.tolist()
    pairs = [(names[c], names[d]) for c, d in tl.edge_index.T]
    assert pairs == [("a", "b"), ("a", "c"), ("user", "a")]
    # overlap windows 4, 5 once; gap 9..11 kept out (fill 0)
    global_w = (tl.window_start_ms - T0_MS) // WMS
    assert global_w.tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 8, 12, 13]
    assert tl.node_features.shape == (11, 4, F)
    for i, w in enumerate(global_w.tolist()):
        for name in names:
            j = names.index(name)
            present = w in PRESENT[name] and w not in MASKED
            assert tl.node_mask[i, j] == float(present), (w, name)
            if present and w not in METRICS_ONLY:
                np.testing.assert_array_equal(tl.node_features[i, j], _node_value(w, name))
                assert tl.targets[i, j, 0] == np.float32(w + CODE[name] / 10)
            elif not present:
                assert not tl.node_features[i, j].any() and not tl.target_mask[i, j].any()
        for k, (c, d) in enumerate(pairs):
            on = w in PRESENT[c] and w in PRESENT[d]
            on = on and w not in MASKED and w not in METRICS_ONLY
            assert tl.edge_weight[i, k] == float(on), (w, c, d)
            if on:
                np.testing.assert_array_equal(tl.edge_features[i, k], _edge_value(w, c, d))
    # the grid holds 9 windows of segment 0 although the shards hold 6 + 5 (overlap dropped)
    assert sum(s["segment"] == 0 for s in SHARDS) == 2 and (global_w <= 8).sum() == 9
    # kinds: user is "user", the rest "service"
    assert tl.node_kind.tolist() == [0, 0, 0, 1]
    assert tl.service_nodes.tolist() == [True, True, True, False]
    # window kinds: 7 masked, 3 metrics only
    assert tl.step_mask[global_w.tolist().index(7)] == 0
    assert tl.step_mask[global_w.tolist().index(3)] == 1
    spans = [w for w, s in zip(global_w.tolist(), tl.has_spans, strict=False) if s]
    assert spans == [0, 1, 2, 4, 5, 6, 8, 12, 13]
    # labels land on the node names
    rc = {
        (int(global_w[i]), names[j]) for i, j in zip(*np.nonzero(tl.label_root_cause), strict=False)
    }
    assert rc == {(8, "c"), (12, "b")}
    assert tl.label_any_fault.sum() == 2 and tl.fault_type_names == ["latency"]


def test_gaps_history_and_sample(synthetic_dir: pathlib.Path) -> None:
    ds = Dataset(synthetic_dir)
    kept_out = load_timeline(ds, "shop", fill_gaps_up_to=0)
    filled = load_timeline(ds, "shop")  # default 4 × steps = 12 ≥ the gap of 3
    gw = (filled.window_start_ms - T0_MS) // WMS
    assert gw.tolist() == list(range(14))
    assert filled.segment.tolist() == [0] * 9 + [-1] * 3 + [1] * 2
    assert not filled.step_mask[9:12].any() and not filled.node_mask[9:12].any()
    for tl in (kept_out, filled):
        w12 = tl.window_index(tl.window_start[0] + 12 * WMS // 1000)
        assert ((tl.window_start_ms[w12] - T0_MS) // WMS) == 12
        hist = tl.history(w12, 5)
        got = [-1 if h < 0 else int((tl.window_start_ms[h] - T0_MS) // WMS) for h in hist]
        want_present = [8, 9, 10, 11, 12] if tl is filled else [8, -1, -1, -1, 12]
        assert got == want_present
        smp = tl.sample(w12, 5)
        assert smp["window_start"].tolist() == [
            (T0_MS + WMS * w) // 1000 for w in (8, 9, 10, 11, 12)
        ]
        assert smp["node_features"].shape == (5, 4, F)
        assert smp["node_mask"][1:4].sum() == 0 and smp["node_mask"][0].sum() == 3  # a c user
        np.testing.assert_array_equal(
            smp["node_features"][4, list(tl.node_names).index("b")], _node_value(12, "b")
        )
        assert tl.history(0, 2).tolist() == [-1, 0]
    t0 = int(kept_out.window_start[0])
    assert kept_out.window_index(t0 + 10) == 1
    assert kept_out.window_index(t0 + 90) == -1  # window 9: in the gap kept out
    assert filled.window_index(t0 + 90) == 9
    assert kept_out.window_index(t0 + 95) == -1  # off the grid
    assert kept_out.window_index(np.array([t0, t0 + 120])).tolist() == [0, 9]


def test_select(synthetic_dir: pathlib.Path) -> None:
    tl = load_timeline(Dataset(synthetic_dir), "shop", fill_gaps_up_to=0)
    sub = tl.select(start_s=tl.window_start[4], end_s=tl.window_start[6])
    assert ((sub.window_start_ms - T0_MS) // WMS).tolist() == [4, 5]
    assert sub.node_features.shape == (2, 4, F) and sub.edge_index.shape == tl.edge_index.shape
    sub2 = tl.select(tl.has_spans)
    assert sub2.num_windows == int(tl.has_spans.sum()) and sub2.has_spans.all()


def meshwatch_bin() -> str:
    path = os.environ.get("MESHWATCH_BIN")
    if not path or not os.access(path, os.X_OK):
        pytest.fail(
            f"MESHWATCH_BIN={path!r}: point it at the `meshwatch` CLI (scripts/test.sh sets it)",
            pytrace=False,
        )
    return path


def test_real_fixture_matches_shards(tmp_path: pathlib.Path) -> None:
    """The Nezha raw fixture built by the CLI: several segments, overlapping shards with
    different node sets; every shard window must land on the timeline by node name."""
    cli = meshwatch_bin()
    raw = REPO / "tests" / "fixtures" / "nezha-raw" / "onlineboutique" / "2022-08-22"
    imp, out = tmp_path / "imp", tmp_path / "ds"
    subprocess.run([cli, "dataset", "import", "nezha", str(raw), "--out", str(imp)], check=True,
                   capture_output=True)  # fmt: skip
    subprocess.run(
        [cli, "dataset", "build", "--traces", str(imp / "traces.otlp.jsonl"),
         "--metrics", str(imp / "metrics.otlp.jsonl"), "--labels", str(imp / "labels.jsonl"),
         "--window", "10s", "--steps", "4", "--shard-steps", "8", "--out", str(out)],
        check=True, capture_output=True,
    )  # fmt: skip
    ds = Dataset(out)
    entry = ds.graphs[0]
    tl = load_timeline(ds, entry["graph"], fill_gaps_up_to=0)
    assert len(entry["shards"]) > 2 and entry["segments"] > 1
    assert any(s["overlap"] > 0 for s in entry["shards"])
    assert len({s["nodes"] for s in entry["shards"]}) > 1, "want shards with different node sets"
    assert np.all(np.diff(tl.window_start_ms) > 0)
    assert tl.num_windows == entry["windows_observed"] + entry["windows_missing"]
    names = tl.node_names.tolist()
    assert names == sorted(names)
    for sh in entry["shards"]:
        a = ds.load_shard(sh)
        rows = tl.window_index(a["window_start_ms"], ms=True)
        assert (rows >= 0).all()
        cols = [names.index(str(x)) for x in a["node_names"]]
        np.testing.assert_array_equal(tl.node_features[rows][:, cols], a["node_features"])
        np.testing.assert_array_equal(tl.node_mask[rows][:, cols], a["node_mask"])
        np.testing.assert_array_equal(tl.label_root_cause[rows][:, cols], a["label_root_cause"])
        sn = [str(x) for x in a["node_names"]]
        pairs = [(names[c], names[d]) for c, d in tl.edge_index.T]
        ecols = [pairs.index((sn[c], sn[d])) for c, d in a["edge_index"].T]
        np.testing.assert_array_equal(tl.edge_weight[rows][:, ecols], a["edge_weight"])
    assert tl.label_any_fault.sum() > 0

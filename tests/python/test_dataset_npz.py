"""Reads a dataset written by `meshwatch dataset build` with numpy alone, as training will, and
checks it against docs/dataset-format.md: the array table of the document (names, dtypes, shapes),
the manifest, masks and presence flags, shard overlaps, and the labels, recomputed here from the
labels file with the document's rules.

    $MESHWATCH_PYTHON tests/python/test_dataset_npz.py DIR [--expect FILE]

`--expect` names a JSON list of values the Rust test computed by hand from the snapshots
(`{"file", "array", "index", "value", "tol"}`): each must be what numpy reads. The Rust test
`services/cli/tests/dataset.rs` builds DIR from the committed Nezha fixtures and runs this.

Under `unittest discover` (scripts/test.sh), without a dataset, the checker is tested on small
datasets written here with numpy: a valid one passes, and each broken variant fails.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import unittest
from pathlib import Path
from typing import Any

import numpy as np

DOC = Path(__file__).resolve().parents[2] / "docs" / "dataset-format.md"
LABEL_ARRAYS = {"label_root_cause", "label_any_fault", "label_fault_type", "fault_type_names"}


def doc_arrays() -> dict[str, tuple[str, list[str]]]:
    """The array table of the document: name -> (dtype, shape symbols)."""
    text = DOC.read_text(encoding="utf-8")
    block = re.search(r"<!-- arrays:begin[^\n]*-->\n(.*?)<!-- arrays:end -->", text, re.S)
    assert block, f"{DOC} has no arrays block"
    arrays = {}
    for line in block.group(1).splitlines()[2:]:
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]
        name, dtype, shape = cells[0].strip("`"), cells[1].strip("`").replace("\\|", "|"), cells[2]
        dims = [d.strip() for d in shape.strip("()[]").split(",") if d.strip()]
        arrays[name] = (dtype, dims)
    assert arrays, "empty arrays table"
    return arrays


def check_dtype(name: str, array: np.ndarray, dtype: str) -> None:
    if dtype == "<U":
        assert array.dtype.kind == "U", f"{name}: dtype {array.dtype}, want unicode"
    else:
        assert array.dtype == np.dtype(dtype), f"{name}: dtype {array.dtype}, want {dtype}"


def check_finite_01(name: str, array: np.ndarray) -> None:
    assert np.all((array == 0) | (array == 1)), f"{name}: not 0/1"


def overlaps(label: dict[str, Any], start: int, end: int) -> bool:
    return label["start_ms"] < end and start < label["end_ms"]


def expected_labels(
    labels: list[dict[str, Any]], graph: str, starts: np.ndarray, window_ms: int, names: list[str], types: list[str]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The document's label rules, computed independently of the Rust code."""
    root = np.zeros((len(starts), len(names)), dtype=np.uint8)
    anyf = np.zeros(len(starts), dtype=np.uint8)
    ftype = np.full(len(starts), -1, dtype=np.int64)
    ours = [lab for lab in labels if lab["graph"] == graph]
    for t, start in enumerate(int(s) for s in starts):
        end = start + window_ms
        hits = [lab for lab in ours if overlaps(lab, start, end)]
        if not hits:
            continue
        anyf[t] = 1
        for lab in hits:
            if lab["root_cause"] in names:
                root[t, names.index(lab["root_cause"])] = 1
        # Longest overlap, then earlier start, then earlier label (stable max).
        best = max(
            enumerate(hits),
            key=lambda il: (min(il[1]["end_ms"], end) - max(il[1]["start_ms"], start), -il[1]["start_ms"], -il[0]),
        )[1]
        ftype[t] = types.index(best["fault_type"])
    return root, anyf, ftype


def check_shard(root: Path, manifest: dict, graph: dict, entry: dict, labels) -> dict[str, np.ndarray]:
    spec = doc_arrays()
    with np.load(root / entry["file"]) as z:  # allow_pickle stays False
        arrays = {name: z[name] for name in z.files}
    want = set(spec) if manifest["fault_types"] is not None else set(spec) - LABEL_ARRAYS
    assert set(arrays) == want, f"{entry['file']}: arrays {sorted(set(arrays) ^ want)} differ from the document"
    sizes = {
        "T": arrays["window_start"].shape[0],
        "N": arrays["node_names"].shape[0],
        "E": arrays["edge_index"].shape[1],
        "F": len(manifest["node_features"]),
        "Fe": len(manifest["edge_features"]),
        "M": len(manifest["targets"]),
        "K": len(manifest["fault_types"] or []),
    }
    for name, array in arrays.items():
        dtype, dims = spec[name]
        check_dtype(name, array, dtype)
        shape = tuple(int(d) if d.isdigit() else sizes[d] for d in dims)
        assert array.shape == shape, f"{entry['file']}: {name} has shape {array.shape}, want {shape}"
        if array.dtype.kind == "f":
            assert np.all(np.isfinite(array)), f"{name}: NaN or inf"

    t_len, n_len, e_len = sizes["T"], sizes["N"], sizes["E"]
    assert int(arrays["feature_schema_version"]) == manifest["feature_schema_version"]
    assert int(arrays["format_version"]) == manifest["format_version"] == 1
    assert str(arrays["graph"]) == graph["graph"]
    assert int(arrays["window_ms"]) == manifest["window_ms"]
    assert int(arrays["segment"]) == entry["segment"]
    assert int(arrays["overlap"]) == entry["overlap"]
    assert list(arrays["node_feature_names"]) == manifest["node_features"]
    assert list(arrays["edge_feature_names"]) == manifest["edge_features"]
    assert list(arrays["target_names"]) == manifest["targets"]
    assert list(arrays["node_kind_names"]) == manifest["node_kinds"]
    assert (entry["steps"], entry["nodes"], entry["edges"]) == (t_len, n_len, e_len)
    names = list(arrays["node_names"])
    assert names == sorted(names, key=lambda s: s.encode()) and len(set(names)) == n_len, "node names sorted, unique"
    assert np.all((arrays["node_kind"] >= 0) & (arrays["node_kind"] < len(manifest["node_kinds"])))

    starts = arrays["window_start_ms"]
    assert starts[0] == entry["first_window_start_ms"]
    assert np.all(np.diff(starts) == manifest["window_ms"]), "windows are consecutive on the grid"
    assert np.array_equal(arrays["window_start"], starts // 1000)

    node_mask, step_mask = arrays["node_mask"], arrays["step_mask"]
    for name in ("node_mask", "edge_weight", "step_mask", "target_mask"):
        check_finite_01(name, arrays[name])
    assert int(step_mask.sum()) == entry["observed_steps"]
    x, ew, ef = arrays["node_features"], arrays["edge_weight"], arrays["edge_features"]
    assert np.all(x[node_mask == 0] == 0), "absent nodes have all-zero features"
    assert np.all(ef[ew == 0] == 0), "absent edges have all-zero features"
    assert np.all(node_mask[step_mask == 0] == 0) and np.all(ew[step_mask == 0] == 0), "masked steps are empty"
    ei = arrays["edge_index"]
    assert np.all((ei >= 0) & (ei < n_len)), "edge_index within the nodes"
    pairs = [(names[a], names[b]) for a, b in ei.T]
    assert pairs == sorted(pairs, key=lambda p: (p[0].encode(), p[1].encode())), "edges sorted by name"

    feats = manifest["node_features"]
    kinds = [i for i, f in enumerate(feats) if f.startswith("kind_")]
    present = node_mask == 1
    assert np.all(x[..., kinds].sum(axis=-1)[present] == 1), "one kind per present node"
    for i, f in enumerate(feats):
        if f.endswith("_present") and i > 0 and feats[i - 1] == f[: -len("_present")]:
            flag, value = x[..., i], x[..., i - 1]
            check_finite_01(f, flag)
            assert np.all(value[flag == 0] == 0), f"{feats[i - 1]} is 0 where {f} is 0"
        if "ratio" in f or f == "cpu_utilization":
            assert np.all((x[..., i] >= 0) & (x[..., i] <= 1)), f"{f} within [0, 1]"
    targets, target_mask = arrays["targets"], arrays["target_mask"]
    assert np.all(targets[target_mask == 0] == 0), "undefined targets are 0"
    rate = manifest["targets"].index("request_rate")
    assert np.array_equal(target_mask[..., rate], np.repeat(step_mask[:, None], n_len, axis=1))

    if labels is not None:
        types = manifest["fault_types"]
        assert list(arrays["fault_type_names"]) == types
        root_cause, anyf, ftype = expected_labels(labels, graph["graph"], starts, manifest["window_ms"], names, types)
        assert np.array_equal(arrays["label_any_fault"], anyf), "label_any_fault"
        assert np.array_equal(arrays["label_root_cause"], root_cause), "label_root_cause"
        assert np.array_equal(arrays["label_fault_type"], ftype), "label_fault_type"
    return arrays


def check_overlap(prev: dict[str, np.ndarray], cur: dict[str, np.ndarray], k: int) -> None:
    """The first k windows of `cur` repeat the last k of `prev`, node by node (aligned by name)."""
    if k == 0:
        return
    assert np.array_equal(prev["window_start_ms"][-k:], cur["window_start_ms"][:k])
    assert np.array_equal(prev["step_mask"][-k:], cur["step_mask"][:k])
    pn, cn = list(prev["node_names"]), list(cur["node_names"])
    for name in set(pn) | set(cn):
        a = prev["node_features"][-k:, pn.index(name)] if name in pn else None
        b = cur["node_features"][:k, cn.index(name)] if name in cn else None
        if a is None or b is None:
            present = b if a is None else a
            assert np.all(present == 0), f"{name} present in the overlap of one shard only"
        else:
            assert np.array_equal(a, b), f"{name}: overlap differs"


def check_dataset(root: Path, expect: list[dict[str, Any]] | None = None) -> None:
    manifest = json.loads((root / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["format"] == "meshwatch.dataset"
    assert len(manifest["node_kinds"]) == 6
    labels = None
    if manifest["inputs"]["labels"] is not None:
        path = Path(manifest["inputs"]["labels"])
        lines = path.read_text(encoding="utf-8").splitlines()
        labels = [json.loads(line) for line in lines if line.strip()]
        assert manifest["fault_types"] == sorted({lab["fault_type"] for lab in labels})
    assert manifest["graphs"], "no graph"
    for graph in manifest["graphs"]:
        prev, prev_entry, observed, missing = None, None, 0, 0
        for entry in graph["shards"]:
            assert entry["file"].startswith(graph["dir"] + "/")
            arrays = check_shard(root, manifest, graph, entry, labels)
            same_segment = prev_entry is not None and prev_entry["segment"] == entry["segment"]
            if same_segment:
                check_overlap(prev, arrays, entry["overlap"])
            else:
                assert entry["overlap"] == 0, "a segment's first shard repeats nothing"
            k = entry["overlap"]
            observed += int(arrays["step_mask"][k:].sum())
            missing += int((arrays["step_mask"][k:] == 0).sum())
            prev, prev_entry = arrays, entry
        assert (graph["windows_observed"], graph["windows_missing"]) == (observed, missing)
        assert graph["segments"] == len({e["segment"] for e in graph["shards"]})
    for item in expect or []:
        with np.load(root / item["file"]) as z:
            got = z[item["array"]][tuple(item["index"])]
        tol = item.get("tol", 0.0)
        assert abs(float(got) - item["value"]) <= tol, f"{item}: numpy reads {got}"


# --- the checker's own test (no dataset given) -------------------------------------------------


def write_tiny(root: Path, **broken: Any) -> None:
    """A dataset of one graph, two shards (T=2, overlap 1), laid out as the document says."""
    spec = doc_arrays()
    feats = ["kind_service", "kind_user", "requests_per_s", "error_ratio", "cpu_utilization", "cpu_utilization_present"]
    manifest = {
        "format": "meshwatch.dataset",
        "format_version": 1,
        "feature_schema_version": 1,
        "node_features": feats,
        "edge_features": ["calls_per_s"],
        "targets": ["request_rate", "error_ratio"],
        "node_kinds": ["service", "user", "database", "messaging", "peer", "overflow"],
        "fault_types": None,
        "window_ms": 60000,
        "inputs": {"labels": None},
        "graphs": [],
    }
    graph = {
        "graph": "g",
        "dir": "graphs/000-g",
        "windows_observed": 3,
        "windows_missing": 0,
        "segments": 1,
        "shards": [],
    }
    for index, first in enumerate((0, 60000)):
        x = np.zeros((2, 2, len(feats)), dtype=np.float32)
        x[:, 0, 0] = 1  # "a": service
        x[:, 1, 1] = 1  # "user"
        x[:, 0, 2] = np.log1p(np.array([1.0, 2.0]) + index)
        x[:, 0, 4:6] = [[0.5, 1], [0.25, 1]] if index == 0 else [[0.25, 1], [0.0, 0]]
        tm = np.ones((2, 2, 2), dtype=np.float32)
        tm[:, 1, 1] = 0
        tg = np.zeros((2, 2, 2), dtype=np.float32)
        tg[:, 0, 0] = np.array([1.0, 2.0]) + index
        arrays = {
            "feature_schema_version": np.array(1, dtype="<i8"),
            "format_version": np.array(1, dtype="<i8"),
            "graph": np.array("g"),
            "window_ms": np.array(60000, dtype="<i8"),
            "segment": np.array(0, dtype="<i8"),
            "overlap": np.array(index, dtype="<i8"),
            "node_names": np.array(["a", "user"]),
            "node_kind": np.array([0, 1], dtype="<i8"),
            "node_kind_names": np.array(manifest["node_kinds"]),
            "node_feature_names": np.array(feats),
            "edge_feature_names": np.array(["calls_per_s"]),
            "target_names": np.array(["request_rate", "error_ratio"]),
            "node_features": x,
            "node_mask": np.ones((2, 2), dtype=np.float32),
            "edge_index": np.array([[1], [0]], dtype="<i8"),
            "edge_weight": np.ones((2, 1), dtype=np.float32),
            "edge_features": np.full((2, 1, 1), 0.5, dtype=np.float32),
            "window_start": np.array([first // 1000, first // 1000 + 60], dtype="<i8"),
            "window_start_ms": np.array([first, first + 60000], dtype="<i8"),
            "step_mask": np.ones(2, dtype=np.float32),
            "targets": tg,
            "target_mask": tm,
        }
        assert set(arrays) == set(spec) - LABEL_ARRAYS
        for name, change in broken.items():
            arrays[name] = change(arrays[name])
        rel = f"graphs/000-g/shard-{index:05}.npz"
        (root / "graphs/000-g").mkdir(parents=True, exist_ok=True)
        np.savez_compressed(root / rel, **arrays)
        graph["shards"].append(
            {
                "file": rel,
                "segment": 0,
                "first_window_start_ms": first,
                "steps": 2,
                "observed_steps": 2,
                "overlap": index,
                "nodes": 2,
                "edges": 1,
            }
        )
    manifest["graphs"].append(graph)
    (root / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")


def _feature_where_absent(x: np.ndarray) -> np.ndarray:
    x = x.copy()
    x[0, 0, 4] = 0.7
    x[0, 0, 5] = 0
    return x


class CheckerSelfTest(unittest.TestCase):
    def test_a_valid_dataset_passes(self) -> None:
        with tempfile.TemporaryDirectory() as d:
            write_tiny(Path(d))
            check_dataset(
                Path(d),
                [{"file": "graphs/000-g/shard-00001.npz", "array": "targets", "index": [1, 0, 0], "value": 3.0}],
            )

    def test_broken_datasets_fail(self) -> None:
        cases = {
            "wrong dtype": {"node_mask": lambda a: a.astype(np.float64)},
            "value without its presence flag": {"node_features": _feature_where_absent},
            "NaN": {"edge_features": lambda a: np.full_like(a, np.nan)},
            "non-binary mask": {"edge_weight": lambda a: a * 0.5},
            "off the window grid": {"window_start_ms": lambda a: a + np.array([0, 1])},
            "unsorted names": {"node_names": lambda a: a[::-1].copy()},
        }
        for what, broken in cases.items():
            with self.subTest(what), tempfile.TemporaryDirectory() as d:
                write_tiny(Path(d), **broken)
                with self.assertRaises(AssertionError):
                    check_dataset(Path(d))
        with tempfile.TemporaryDirectory() as d:
            write_tiny(Path(d))
            with self.assertRaises(AssertionError):
                check_dataset(
                    Path(d),
                    [{"file": "graphs/000-g/shard-00000.npz", "array": "targets", "index": [0, 0, 0], "value": 9.0}],
                )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", type=Path, help="folder written by meshwatch dataset build")
    parser.add_argument("--expect", type=Path, help="JSON list of values to find in the arrays")
    args = parser.parse_args()
    expect = json.loads(args.expect.read_text(encoding="utf-8")) if args.expect else None
    case = unittest.FunctionTestCase(lambda: check_dataset(args.dataset, expect), description=f"dataset {args.dataset}")
    result = unittest.TextTestRunner(verbosity=2).run(unittest.TestSuite([case]))
    print(f"numpy {np.__version__}: {len(expect or [])} expected values checked", file=sys.stderr)
    return 0 if result.wasSuccessful() else 1


if __name__ == "__main__":
    sys.exit(main())

"""Reader of the training datasets that ``meshwatch dataset build`` writes (docs/dataset-format.md).

Python never computes a feature (ARCHITECTURE.md §4): it reads the encoded tensors with numpy,
checks them against ``manifest.json``, slices T-window sequences, and batches several graphs as one
disjoint-union graph (the ONNX contract of ARCHITECTURE.md §5 allows it: node and edge indices of
the k-th graph are offset by the nodes of graphs 0..k-1).
"""

from __future__ import annotations

import json
import pathlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

SUPPORTED_FORMAT_VERSION = 1
SUPPORTED_FEATURE_SCHEMA_VERSION = 1

# Arrays sliced along the time axis (axis 0) into a sample.
_TIME_ARRAYS = (
    "node_features",
    "node_mask",
    "edge_weight",
    "edge_features",
    "window_start",
    "step_mask",
    "targets",
    "target_mask",
)
_LABEL_ARRAYS = ("label_root_cause", "label_any_fault", "label_fault_type")


class DatasetError(ValueError):
    """The dataset does not match its manifest or the feature schema this package supports."""


@dataclass
class Sample:
    """One sequence of T windows of one graph (numpy arrays, shapes of the ONNX contract)."""

    graph: str
    shard: str
    start: int
    node_names: np.ndarray  # [N] str
    node_kind: np.ndarray  # [N] i64
    node_features: np.ndarray  # [T, N, F] f32
    node_mask: np.ndarray  # [T, N] f32
    edge_index: np.ndarray  # [2, E] i64
    edge_weight: np.ndarray  # [T, E] f32
    edge_features: np.ndarray  # [T, E, Fe] f32
    window_start: np.ndarray  # [T] i64
    step_mask: np.ndarray  # [T] f32
    targets: np.ndarray  # [T, N, M] f32
    target_mask: np.ndarray  # [T, N, M] f32
    labels: dict[str, np.ndarray]

    @property
    def num_nodes(self) -> int:
        return int(self.node_mask.shape[1])

    @property
    def num_edges(self) -> int:
        return int(self.edge_index.shape[1])


class Dataset:
    """A dataset directory: ``manifest.json`` + ``graphs/*/shard-*.npz``."""

    def __init__(self, root: str | pathlib.Path) -> None:
        self.root = pathlib.Path(root)
        path = self.root / "manifest.json"
        if not path.is_file():
            raise DatasetError(f"{path}: missing (not a dataset, or an interrupted build)")
        self.manifest = json.loads(path.read_text())
        m = self.manifest
        if m.get("format") != "meshwatch.dataset":
            raise DatasetError(f"{path}: format {m.get('format')!r} is not 'meshwatch.dataset'")
        if m.get("format_version") != SUPPORTED_FORMAT_VERSION:
            raise DatasetError(
                f"{path}: format_version {m.get('format_version')} is not "
                f"{SUPPORTED_FORMAT_VERSION}"
            )
        if m.get("feature_schema_version") != SUPPORTED_FEATURE_SCHEMA_VERSION:
            raise DatasetError(
                f"{path}: feature_schema_version {m.get('feature_schema_version')} is not "
                f"{SUPPORTED_FEATURE_SCHEMA_VERSION}, the one this package was written for"
            )
        self.feature_schema_version: int = m["feature_schema_version"]
        self.node_feature_names: list[str] = list(m["node_features"])
        self.edge_feature_names: list[str] = list(m["edge_features"])
        self.target_names: list[str] = list(m["targets"])
        self.steps: int = int(m["steps"])

    @property
    def graphs(self) -> list[dict]:
        return list(self.manifest["graphs"])

    def load_shard(self, shard: dict) -> dict[str, np.ndarray]:
        """Load one shard's arrays and check them against the manifest."""
        path = self.root / shard["file"]
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        self._check_shard(path, shard, arrays)
        return arrays

    def _check_shard(self, path: pathlib.Path, shard: dict, a: dict[str, np.ndarray]) -> None:
        def fail(msg: str) -> None:
            raise DatasetError(f"{path}: {msg}")

        if int(a["feature_schema_version"]) != self.feature_schema_version:
            fail(
                f"feature_schema_version {int(a['feature_schema_version'])} != manifest "
                f"{self.feature_schema_version}"
            )
        for key, want in (
            ("node_feature_names", self.node_feature_names),
            ("edge_feature_names", self.edge_feature_names),
            ("target_names", self.target_names),
        ):
            got = [str(x) for x in a[key]]
            if got != want:
                fail(f"{key} {got} differ from the manifest's {want}")
        t, n, f = a["node_features"].shape
        e = a["edge_index"].shape[1]
        if t != shard["steps"] or n != shard["nodes"] or e != shard["edges"]:
            fail(
                f"shape T={t} N={n} E={e} differs from the manifest's "
                f"steps={shard['steps']} nodes={shard['nodes']} edges={shard['edges']}"
            )
        if f != len(self.node_feature_names):
            fail(f"F={f} but the manifest names {len(self.node_feature_names)} node features")
        if a["edge_features"].shape != (t, e, len(self.edge_feature_names)):
            fail(f"edge_features shape {a['edge_features'].shape} != {(t, e)} + Fe")
        if a["edge_index"].dtype != np.int64 or a["edge_index"].shape[0] != 2:
            fail("edge_index is not i64 [2, E]")
        if e and (a["edge_index"].min() < 0 or a["edge_index"].max() >= n):
            fail("edge_index refers to nodes outside [0, N)")

    def windows(self, t: int | None = None) -> Iterator[Sample]:
        """Yield every sequence of ``t`` (≤ manifest steps) consecutive windows exactly once.

        Rule of docs/dataset-format.md: in a shard of ``steps`` windows the starts are
        ``s + t <= steps`` and, unless the shard is the last of its segment,
        ``s < steps - overlap_next``.
        """
        t = self.steps if t is None else int(t)
        if not 1 <= t <= self.steps:
            raise ValueError(f"t={t} must be in [1, {self.steps}] (the dataset's --steps)")
        for graph in self.graphs:
            shards = graph["shards"]
            for i, shard in enumerate(shards):
                nxt = shards[i + 1] if i + 1 < len(shards) else None
                end = shard["steps"] - t + 1
                if nxt is not None and nxt["segment"] == shard["segment"]:
                    end = min(end, shard["steps"] - nxt["overlap"])
                if end <= 0:
                    continue
                a = self.load_shard(shard)
                for s in range(end):
                    yield _slice(graph["graph"], shard["file"], a, s, t)


def _slice(graph: str, file: str, a: dict[str, np.ndarray], s: int, t: int) -> Sample:
    sl = {k: a[k][s : s + t] for k in _TIME_ARRAYS}
    labels = {k: a[k][s : s + t] for k in _LABEL_ARRAYS if k in a}
    return Sample(
        graph=graph,
        shard=file,
        start=s,
        node_names=a["node_names"],
        node_kind=a["node_kind"],
        edge_index=a["edge_index"],
        labels=labels,
        **sl,
    )


@dataclass
class Batch:
    """Several samples of equal T as one disjoint-union graph (torch tensors).

    ``node_offset[k]`` / ``edge_offset[k]`` are where graph k's nodes / edges start;
    ``node_graph[n]`` is the graph of node n. The six model inputs are the ONNX contract's.
    """

    node_features: torch.Tensor  # [T, N, F] f32
    node_mask: torch.Tensor  # [T, N] f32
    edge_index: torch.Tensor  # [2, E] i64
    edge_weight: torch.Tensor  # [T, E] f32
    edge_features: torch.Tensor  # [T, E, Fe] f32
    window_start: torch.Tensor  # [T] i64 (of the first sample; see collate)
    targets: torch.Tensor  # [T, N, M] f32
    target_mask: torch.Tensor  # [T, N, M] f32
    node_offset: torch.Tensor  # [B + 1] i64
    edge_offset: torch.Tensor  # [B + 1] i64
    node_graph: torch.Tensor  # [N] i64

    def model_inputs(self) -> tuple[torch.Tensor, ...]:
        """(node_features, node_mask, edge_index, edge_weight, edge_features)."""
        return (
            self.node_features,
            self.node_mask,
            self.edge_index,
            self.edge_weight,
            self.edge_features,
        )


def collate(samples: Sequence[Sample], same_time: bool = True) -> Batch:
    """Batch samples as one disjoint-union graph: concatenate nodes and edges, offset edge_index.

    All samples must have the same T. The contract has one ``window_start`` [T] per batch, so the
    samples must also share their window starts (batch graphs of the same time span); a batch of
    one sample always qualifies. ``same_time=False`` lifts that check (for the detector, which does
    not read ``window_start``); the batch then carries the first sample's window starts.
    """
    if not samples:
        raise ValueError("collate needs at least one sample")
    t = samples[0].node_mask.shape[0]
    for smp in samples:
        if smp.node_mask.shape[0] != t:
            raise ValueError("all samples of a batch must have the same T")
        if same_time and not np.array_equal(smp.window_start, samples[0].window_start):
            raise ValueError(
                "all samples of a batch must share window_start (one time axis); "
                "pass same_time=False to batch them for the detector"
            )
    n_counts = [smp.num_nodes for smp in samples]
    e_counts = [smp.num_edges for smp in samples]
    node_offset = np.concatenate([[0], np.cumsum(n_counts)]).astype(np.int64)
    edge_offset = np.concatenate([[0], np.cumsum(e_counts)]).astype(np.int64)
    edge_index = np.concatenate(
        [smp.edge_index.astype(np.int64) + node_offset[k] for k, smp in enumerate(samples)], axis=1
    ).reshape(2, -1)
    node_graph = np.repeat(np.arange(len(samples), dtype=np.int64), n_counts)

    def cat(key: str, axis: int) -> torch.Tensor:
        return torch.from_numpy(
            np.ascontiguousarray(np.concatenate([getattr(s, key) for s in samples], axis=axis))
        )

    return Batch(
        node_features=cat("node_features", 1).float(),
        node_mask=cat("node_mask", 1).float(),
        edge_index=torch.from_numpy(np.ascontiguousarray(edge_index)),
        edge_weight=cat("edge_weight", 1).float(),
        edge_features=cat("edge_features", 1).float(),
        window_start=torch.from_numpy(np.ascontiguousarray(samples[0].window_start)).long(),
        targets=cat("targets", 1).float(),
        target_mask=cat("target_mask", 1).float(),
        node_offset=torch.from_numpy(node_offset),
        edge_offset=torch.from_numpy(edge_offset),
        node_graph=torch.from_numpy(node_graph),
    )

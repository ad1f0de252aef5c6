"""Shared helpers: fixed seeds and synthetic samples with the dataset's shapes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from meshwatch_training.data import Sample

F, FE, M = 29, 12, 4


@pytest.fixture(autouse=True)
def _seed() -> None:
    """Fixed seed for every test (numpy draws use explicit default_rng(seed) generators)."""
    torch.manual_seed(0)


def synthetic_sample(
    t: int, n: int, e: int, seed: int = 0, window_start: int = 1_700_000_000
) -> Sample:
    rng = np.random.default_rng(seed)
    mask = (rng.random((t, n)) < 0.8).astype(np.float32)
    mask[-1, 0] = 1.0
    x = rng.normal(size=(t, n, F)).astype(np.float32) * mask[..., None]
    ei = rng.integers(0, n, size=(2, e)).astype(np.int64)
    w = (rng.random((t, e)) < 0.7).astype(np.float32)
    ef = rng.normal(size=(t, e, FE)).astype(np.float32) * w[..., None]
    return Sample(
        graph=f"g{seed}",
        shard="synthetic",
        start=0,
        node_names=np.array([f"svc-{i}" for i in range(n)]),
        node_kind=np.zeros(n, dtype=np.int64),
        node_features=x,
        node_mask=mask,
        edge_index=ei,
        edge_weight=w,
        edge_features=ef,
        window_start=window_start + 60 * np.arange(t, dtype=np.int64),
        step_mask=np.ones(t, dtype=np.float32),
        targets=np.abs(rng.normal(size=(t, n, M))).astype(np.float32),
        target_mask=np.ones((t, n, M), dtype=np.float32),
        labels={},
    )

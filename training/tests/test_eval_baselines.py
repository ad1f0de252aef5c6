"""evaluate/baselines.py: the z-score rules by hand, and every baseline flags an obvious spike."""

from __future__ import annotations

import numpy as np
import pytest
from test_timeline import NODE_FEATURES, F, make_timeline

from meshwatch_training.evaluate.baselines import (
    ANOMALY_BASELINES,
    node_window_vectors,
    zscore_gap,
    zscore_latency,
    zscore_resources,
)

W, N = 60, 2
P90, P99 = NODE_FEATURES.index("latency_p90_ms"), NODE_FEATURES.index("latency_p99_ms")
REQ = NODE_FEATURES.index("requests_per_s")


def _spiky(clean: bool = False) -> tuple:
    """Two nodes; node 0 has a latency spike at window 50. ``clean``: the spike is in p90 and
    p99 and nothing else varies but latency (the fixture of the all-baselines smoke test)."""
    rng = np.random.default_rng(0)
    x = np.zeros((W, N, F), np.float32)
    x[:, :, REQ] = 2.0
    x[:, :, P90] = 5.0 + 0.1 * rng.standard_normal((W, N))
    x[:, :, P99] = 6.0 + 0.1 * rng.standard_normal((W, N))
    x[:, :, NODE_FEATURES.index("cpu_utilization")] = 0.3 + 0.01 * rng.standard_normal((W, N))
    x[:, :, NODE_FEATURES.index("cpu_utilization_present")] = 1.0
    x[50, 0, P90] = 9.0  # the spike
    if clean:
        x[50, 0, P99] = 10.0
        x[:, :, NODE_FEATURES.index("cpu_utilization")] = 0.3
    else:
        x[55, 1, REQ] = 0.0  # node 1 served nothing: its latency is undefined there
    train = np.arange(W) < 40
    return make_timeline(x), x, train, ~train


def test_zscore_hand_computed() -> None:
    tl, x, train, test = _spiky()
    s = zscore_latency(tl, train, test)
    assert np.isnan(s[:40]).all()  # train windows are not scored
    col = x[:40, 0, P90].astype(np.float64)
    med = np.median(col)
    scale = max(1.4826 * np.median(np.abs(col - med)), 0.05 * abs(med), 0.01)
    z90 = abs(9.0 - med) / scale
    assert s[50, 0] >= z90 - 1e-6  # max over p90 and p99
    assert s[50, 0] == pytest.approx(max(z90, s[50, 0]))
    assert np.nanargmax(s[:, 0]) == 50 and s[50, 0] > 10
    assert np.isnan(s[55, 1]) and not np.isnan(s[54, 1])
    # the floor: a flat training series gives a finite score
    x2 = x.copy()
    x2[:, 1, P90] = 5.0
    x2[:, 1, P99] = 5.0
    s2 = zscore_latency(make_timeline(x2), train, test)
    assert np.isfinite(s2[41, 1]) and s2[41, 1] == pytest.approx(0.0)


def test_zscore_groups_absent_features_are_nan() -> None:
    tl, _, train, test = _spiky()
    assert np.isnan(zscore_gap(tl, train, test)).all()  # in_gap_present is 0 everywhere
    r = zscore_resources(tl, train, test)
    assert np.isfinite(r[40:]).all()


def test_zscore_seasonal_buckets() -> None:
    # 3 days of hourly windows; hour 3 always high: seasonal stats make it normal
    w = 72
    x = np.zeros((w, 1, F), np.float32)
    x[:, 0, REQ] = 1.0
    x[:, 0, P90] = 5.0 + 0.01 * (np.arange(w) % 5)
    hours = np.arange(w) % 24
    x[hours == 3, 0, P90] = 8.0
    tl = make_timeline(x, window_ms=3_600_000, start_ms=1_700_006_400_000)  # 00:00 UTC
    assert (tl.window_start[0] // 3600) % 24 == 0
    train = np.ones(w, bool)
    s = zscore_latency(tl, train, train, min_bucket=3)
    assert s[3, 0] < 1.0  # hour-3 bucket has its own median
    s_glob = zscore_latency(tl, train, train, min_bucket=10)  # 3 points per bucket: global
    assert s_glob[3, 0] > 10.0


def test_node_window_vectors_diff() -> None:
    tl, x, _, _ = _spiky()
    v = node_window_vectors(tl)
    nf = F - 6
    assert v.shape == (W, N, 2 * nf)
    np.testing.assert_allclose(v[50, 0, nf + P90 - 6], x[50, 0, P90] - x[49, 0, P90])
    assert not v[0, :, nf:].any()  # no previous window


@pytest.mark.parametrize(
    "name", sorted(set(ANOMALY_BASELINES) - {"zscore_resources", "zscore_gap"})
)
def test_every_baseline_flags_the_spike(name: str) -> None:
    tl, _, train, test = _spiky(clean=True)
    params = {"max_steps": 150} if name.startswith("autoencoder") else {}
    if name == "autoencoder_gru":
        params["t"] = 4
    s = ANOMALY_BASELINES[name](tl, train, test, **params)
    assert s.shape == (W, N) and np.isnan(s[:40]).all()
    assert np.isfinite(s[40:]).all() or name.startswith("zscore")
    # the spike, or the window after it (whose difference to the spike is as abnormal)
    assert np.nanargmax(s[40:, 0]) + 40 in (50, 51), name
    others = np.delete(s[40:, 0], [10, 11])
    assert s[50, 0] > np.nanmax(others), name
    if name.startswith("autoencoder"):  # deterministic with its seed
        np.testing.assert_array_equal(s, ANOMALY_BASELINES[name](tl, train, test, **params))

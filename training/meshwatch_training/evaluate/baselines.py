"""Anomaly-detection baselines on a :class:`~meshwatch_training.timeline.Timeline`.

Every baseline has the signature ``fn(timeline, train_mask [W] bool, test_mask [W] bool,
**params) -> scores [W, N]`` (float64, higher = more anomalous): it is fitted on the training
windows only (never on labels) and scores the test windows; NaN outside the test windows and
where the node is absent (``node_mask`` 0). Features are looked up by name in
``timeline.node_feature_names`` (the encoded values of docs/dataset-format.md: latencies, rates
and bytes are ``log1p``, ratios in [0, 1]).

Training cells are node-windows of training windows **with spans** (``timeline.has_spans``)
where the node is present. A feature only counts where it is defined: latency and ``error_ratio``
where the node served requests (``requests_per_s > 0``), ``out_error_ratio`` where it called out,
gap features where ``in_gap_present``, a resource feature where its ``_present`` flag is 1, and
every trace feature only in windows with spans.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from ..timeline import Timeline

DAY_S = 86_400

# -------------------------------------------------------------------------------- feature groups
_LATENCY = ("latency_p90_ms", "latency_p99_ms")
_ERRORS = ("error_ratio", "out_error_ratio")
_RESOURCES = (
    "cpu_utilization",
    "memory_utilization",
    "memory_bytes",
    "network_rx_bytes_per_s",
    "network_tx_bytes_per_s",
)
_GAP = ("in_gap_p90_ms", "in_gap_p50_ms")
_RATE = ("requests_per_s",)


def _defined(tl: Timeline, name: str) -> np.ndarray:
    """[W, N] bool: where feature ``name`` carries a value (see the module docstring)."""
    present = tl.node_mask > 0
    spans = tl.has_spans[:, None]
    names = tl.node_feature_names

    def flag(f: str) -> np.ndarray:
        return tl.node_feature(f) > 0 if f in names else np.zeros_like(present)

    if name in _RESOURCES:
        return present & flag(f"{name}_present")
    if name in ("latency_p50_ms", *_LATENCY, "error_ratio"):
        return present & spans & flag("requests_per_s")
    if name in ("out_error_ratio", "out_latency_p90_ms"):
        return present & spans & flag("out_calls_per_s")
    if name in _GAP:
        return present & spans & flag("in_gap_present")
    return present & spans


def _robust_stats(
    x: np.ndarray, ok: np.ndarray, rel_eps: float, abs_eps: float
) -> tuple[float, float, int]:
    vals = x[ok]
    if vals.size == 0:
        return float("nan"), float("nan"), 0
    med = float(np.median(vals))
    mad = float(np.median(np.abs(vals - med))) * 1.4826
    return med, max(mad, rel_eps * abs(med), abs_eps), int(vals.size)


def robust_zscores(
    tl: Timeline,
    train_mask: np.ndarray,
    test_mask: np.ndarray,
    features: tuple[str, ...],
    rel_eps: float = 0.05,
    abs_eps: float = 0.01,
    min_bucket: int = 10,
) -> np.ndarray:
    """[W, N] max over ``features`` (those the schema has) of the robust z-score.

    Per node and feature, over the training cells where the feature is defined:
    median m and scale σ = max(1.4826 · MAD, rel_eps · |m|, abs_eps) (the floor keeps a flat
    training series from turning noise into huge scores); z = |x − m| / σ. Seasonality: when the
    training windows span ≥ 2 days, m and σ are per hour-of-day (UTC) bucket, falling back to the
    node's global m, σ for a bucket with fewer than ``min_bucket`` points. Scored in test windows
    where the node is present and the feature defined; NaN where no listed feature is defined
    (or the schema has none of them).
    """
    train = np.asarray(train_mask, dtype=bool)
    test = np.asarray(test_mask, dtype=bool)
    w, n = tl.node_mask.shape
    out = np.full((w, n), np.nan)
    hours = (tl.window_start // 3600) % 24
    tr_ws = tl.window_start[train & tl.has_spans]
    seasonal = tr_ws.size > 0 and (tr_ws.max() - tr_ws.min()) >= 2 * DAY_S
    for name in features:
        if name not in tl.node_feature_names:
            continue
        x = tl.node_feature(name).astype(np.float64)
        defined = _defined(tl, name)
        fit = defined & train[:, None]
        score = test[:, None] & defined
        med = np.full((w, n), np.nan)
        scale = np.full((w, n), np.nan)
        for j in range(n):
            m0, s0, cnt = _robust_stats(x[:, j], fit[:, j], rel_eps, abs_eps)
            if cnt == 0:
                continue
            med[:, j], scale[:, j] = m0, s0
            if seasonal:
                for h in range(24):
                    in_h = hours == h
                    mh, sh, ch = _robust_stats(x[:, j], fit[:, j] & in_h, rel_eps, abs_eps)
                    if ch >= min_bucket:
                        med[in_h, j], scale[in_h, j] = mh, sh
        z = np.abs(x - med) / scale
        z = np.where(score & np.isfinite(z), z, np.nan)
        out = np.fmax(out, z)  # fmax: NaN only where both are NaN
    return out


def zscore_latency(tl: Timeline, train_mask, test_mask, **params: Any) -> np.ndarray:
    """Robust z-score of ``latency_p90_ms`` and ``latency_p99_ms`` (max of the two)."""
    return robust_zscores(tl, train_mask, test_mask, _LATENCY, **params)


def zscore_resources(tl: Timeline, train_mask, test_mask, **params: Any) -> np.ndarray:
    """Robust z-score of the resource features (CPU, memory utilisation and bytes, network
    rx/tx) where received; NaN where none is."""
    return robust_zscores(tl, train_mask, test_mask, _RESOURCES, **params)


def zscore_gap(tl: Timeline, train_mask, test_mask, **params: Any) -> np.ndarray:
    """Robust z-score of ``in_gap_p90_ms`` and ``in_gap_p50_ms`` where ``in_gap_present``."""
    return robust_zscores(tl, train_mask, test_mask, _GAP, **params)


def zscore_combined(tl: Timeline, train_mask, test_mask, **params: Any) -> np.ndarray:
    """Max of the robust z-scores of latency, errors (``error_ratio``, ``out_error_ratio``),
    resources, gap and ``requests_per_s``."""
    feats = _LATENCY + _ERRORS + _RESOURCES + _GAP + _RATE
    return robust_zscores(tl, train_mask, test_mask, feats, **params)


# ------------------------------------------------------------------------ node-window vectors
def _value_features(tl: Timeline) -> list[int]:
    """Indices of the node features other than the ``kind_*`` one-hots."""
    return [i for i, f in enumerate(tl.node_feature_names) if not f.startswith("kind_")]


def node_window_vectors(tl: Timeline) -> np.ndarray:
    """[W, N, 2F'] per node-window: its features (without the kind one-hots) and their
    difference from the node's previous grid window (0 where that window is missing or the
    node was absent in either)."""
    x = tl.node_features[:, :, _value_features(tl)].astype(np.float32)
    prev = tl.grid_offset(-1)[:, 0]
    have = prev >= 0
    xp = np.zeros_like(x)
    xp[have] = x[prev[have]]
    both = (tl.node_mask > 0) & np.where(
        have[:, None], tl.node_mask[np.where(have, prev, 0)] > 0, False
    )
    diff = np.where(both[..., None], x - xp, 0.0).astype(np.float32)
    return np.concatenate([x, diff], axis=2)


def _train_cells(tl: Timeline, train_mask: np.ndarray) -> np.ndarray:
    return np.asarray(train_mask, dtype=bool)[:, None] & tl.has_spans[:, None] & (tl.node_mask > 0)


def _score_cells(tl: Timeline, test_mask: np.ndarray) -> np.ndarray:
    return np.asarray(test_mask, dtype=bool)[:, None] & (tl.node_mask > 0)


def isolation_forest(
    tl: Timeline,
    train_mask,
    test_mask,
    n_estimators: int = 200,
    random_state: int = 0,
    max_train: int = 200_000,
) -> np.ndarray:
    """scikit-learn IsolationForest on :func:`node_window_vectors` (fit on the training cells,
    at most ``max_train`` of them drawn with a fixed seed); score = −``score_samples`` (higher =
    more anomalous)."""
    from sklearn.ensemble import IsolationForest

    v = node_window_vectors(tl)
    fit = _train_cells(tl, train_mask)
    score = _score_cells(tl, test_mask)
    out = np.full(fit.shape, np.nan)
    xt = v[fit]
    if xt.shape[0] < 2 or not score.any():
        return out
    rng = np.random.default_rng(random_state)
    if xt.shape[0] > max_train:
        xt = xt[rng.choice(xt.shape[0], max_train, replace=False)]
    model = IsolationForest(n_estimators=n_estimators, random_state=random_state)
    model.fit(xt)
    out[score] = -model.score_samples(v[score])
    return out


# ------------------------------------------------------------------------------- autoencoders
def _standardiser(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean = x.mean(axis=0)
    std = x.std(axis=0)
    std = np.where(std < 1e-6, 1.0, std)  # constant features: centred, not scaled
    return mean.astype(np.float32), std.astype(np.float32)


def _train_loop(
    model: nn.Module, data: torch.Tensor, epochs: int, batch: int, max_steps: int, lr: float
) -> None:
    """Adam on MSE reconstruction; ``epochs`` passes over shuffled mini-batches, stopped after
    ``max_steps`` optimizer steps in all (so large datasets stay within a time budget)."""
    gen = torch.Generator().manual_seed(0)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    steps = 0
    n = data.shape[0]
    model.train()
    for _ in range(epochs):
        perm = torch.randperm(n, generator=gen)
        for i in range(0, n, batch):
            xb = data[perm[i : i + batch]]
            loss = ((model(xb) - xb) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            steps += 1
            if steps >= max_steps:
                return


class _MLPAutoencoder(nn.Module):
    def __init__(self, d: int, hidden: int, bottleneck: int) -> None:
        super().__init__()
        self.enc = nn.Sequential(nn.Linear(d, hidden), nn.ReLU(), nn.Linear(hidden, bottleneck))
        self.dec = nn.Sequential(
            nn.ReLU(), nn.Linear(bottleneck, hidden), nn.ReLU(), nn.Linear(hidden, d)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dec(self.enc(x))


class _GRUAutoencoder(nn.Module):
    """Encoder GRU → bottleneck (last hidden state) → decoder GRU fed the bottleneck at every
    step → linear read-out of each step."""

    def __init__(self, d: int, hidden: int, bottleneck: int) -> None:
        super().__init__()
        self.enc = nn.GRU(d, hidden, batch_first=True)
        self.to_z = nn.Linear(hidden, bottleneck)
        self.dec = nn.GRU(bottleneck, hidden, batch_first=True)
        self.out = nn.Linear(hidden, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, h = self.enc(x)
        z = self.to_z(h[-1])
        y, _ = self.dec(z[:, None, :].expand(-1, x.shape[1], -1).contiguous())
        return self.out(y)


def autoencoder_mlp(
    tl: Timeline,
    train_mask,
    test_mask,
    hidden: int = 32,
    bottleneck: int = 8,
    epochs: int = 200,
    batch: int = 256,
    max_steps: int = 3000,
    lr: float = 1e-3,
    seed: int = 0,
) -> np.ndarray:
    """MLP autoencoder (d → hidden → ``bottleneck`` → hidden → d) on :func:`node_window_vectors`,
    standardised with the training mean/std. Trained on the training cells (Adam, MSE, at most
    ``epochs`` passes and ``max_steps`` steps, ``torch.manual_seed(seed)``, CPU); score = mean
    squared reconstruction error of the standardised vector."""
    torch.manual_seed(seed)
    v = node_window_vectors(tl)
    fit = _train_cells(tl, train_mask)
    score = _score_cells(tl, test_mask)
    out = np.full(fit.shape, np.nan)
    if fit.sum() < 2 or not score.any():
        return out
    mean, std = _standardiser(v[fit])
    xt = torch.from_numpy((v[fit] - mean) / std)
    model = _MLPAutoencoder(xt.shape[1], hidden, bottleneck)
    _train_loop(model, xt, epochs, batch, max_steps, lr)
    model.eval()
    xs = torch.from_numpy((v[score] - mean) / std)
    with torch.no_grad():
        err = ((model(xs) - xs) ** 2).mean(dim=1).numpy()
    out[score] = err
    return out


def node_sequences(tl: Timeline, cells: np.ndarray, t: int) -> np.ndarray:
    """[C, t, F'+1] for each cell (w, n) of ``cells`` [W, N]: the node's value features over the
    grid windows w − t + 1 .. w plus a presence channel (features 0 where absent or missing)."""
    x = tl.node_features[:, :, _value_features(tl)].astype(np.float32)
    hist = tl.grid_offset(np.arange(-(t - 1), 1))  # [W, t]
    ww, nn_ = np.nonzero(cells)
    h = hist[ww]  # [C, t]
    have = h >= 0
    hs = np.where(have, h, 0)
    seq = x[hs, nn_[:, None]]  # [C, t, F']
    pres = (tl.node_mask[hs, nn_[:, None]] > 0) & have
    seq = np.where(pres[..., None], seq, 0.0)
    return np.concatenate([seq, pres[..., None].astype(np.float32)], axis=2).astype(np.float32)


def autoencoder_gru(
    tl: Timeline,
    train_mask,
    test_mask,
    t: int = 8,
    hidden: int = 32,
    bottleneck: int = 8,
    epochs: int = 200,
    batch: int = 256,
    max_steps: int = 1500,
    lr: float = 2e-3,
    seed: int = 0,
) -> np.ndarray:
    """GRU sequence autoencoder over each node's last ``t`` grid windows (:func:`node_sequences`,
    standardised per channel with the training mean/std of present steps; absent steps are 0
    after standardising, with presence 0). Reconstructs the whole sequence (MSE loss, Adam,
    budget as :func:`autoencoder_mlp`); score = MSE of the reconstructed last window."""
    torch.manual_seed(seed)
    fit = _train_cells(tl, train_mask)
    score = _score_cells(tl, test_mask)
    out = np.full(fit.shape, np.nan)
    if fit.sum() < 2 or not score.any():
        return out
    seq_fit = node_sequences(tl, fit, t)
    pres = seq_fit[..., -1] > 0
    mean, std = _standardiser(seq_fit[pres][:, :-1])
    mean, std = np.append(mean, 0.0).astype(np.float32), np.append(std, 1.0).astype(np.float32)

    def norm(seq: np.ndarray) -> torch.Tensor:
        p = seq[..., -1:] > 0
        return torch.from_numpy(np.where(p, (seq - mean) / std, 0.0).astype(np.float32))

    model = _GRUAutoencoder(seq_fit.shape[2], hidden, bottleneck)
    _train_loop(model, norm(seq_fit), epochs, batch, max_steps, lr)
    model.eval()
    xs = norm(node_sequences(tl, score, t))
    errs = []
    with torch.no_grad():
        for i in range(0, xs.shape[0], 4096):
            xb = xs[i : i + 4096]
            errs.append(((model(xb)[:, -1] - xb[:, -1]) ** 2).mean(dim=1).numpy())
    out[score] = np.concatenate(errs)
    return out


AnomalyBaseline = Callable[..., np.ndarray]

ANOMALY_BASELINES: dict[str, AnomalyBaseline] = {
    "zscore_latency": zscore_latency,
    "zscore_resources": zscore_resources,
    "zscore_gap": zscore_gap,
    "zscore_combined": zscore_combined,
    "isolation_forest": isolation_forest,
    "autoencoder_mlp": autoencoder_mlp,
    "autoencoder_gru": autoencoder_gru,
}

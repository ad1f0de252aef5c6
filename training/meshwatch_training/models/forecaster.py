"""Spatiotemporal forecaster, after arXiv 2508.07122 (graph convolution + GRU + time encoding).

The paper forecasts microservice workload with a graph convolution per time slice, a GRU over the
slices and an encoding of the timestamps for non-stationary series. Here, with x_t ∈ R^{N×F} the
node features of window t = 0..T-1, m_t the node mask and τ_t = window_start[t] (unix seconds):

    c_n = max(Σ_t m_tn, 1),   μ_n = Σ_t m_tn x_tn / c_n,
    σ_n = max(sqrt(Σ_t m_tn (x_tn - μ_n)² / c_n), σ_min)
      (with ``robust_norm``, what the shipped config uses: μ_n = the lower median of the
       present x_tn and σ_n = max(1.4826 · lower median of |x_tn − μ_n|, σ_min) — a fault among
       the input windows then moves neither, where it drags a mean and inflates a deviation)
    x̃_t = m_t ⊙ (x_t - μ) / σ                                               (per-node normalisation)
    φ(τ) = [sin, cos](2π·tod(τ)), [sin, cos](2π·dow(τ)),
           sin(2π ω_k p(τ) + β_k), k = 1..K                                 (time encoding;
           tod = (τ mod 86400)/86400, dow = ((⌊τ/86400⌋ + 3) mod 7)/7 (Monday = 0),
           p = (τ mod 604800)/604800, ω, β learned)
    H_t = GCN_K(GELU([x̃_t; m_t; φ(τ_t)] W_in); edge_index, w_t, a_t)        (graph conv per slice)
    h   = GRU(H_0..H_{T-1})  (per node)                                       (temporal)
    for h' = 1..H:  [ŷ₅₀, δ⁻, δ⁺] = MLP([h; φ(τ_{T-1} + h'·Δ)])               (Δ = window seconds)
      q₅₀ = ŷ₅₀,  q_lo = ŷ₅₀ - softplus(δ⁻),  q_hi = ŷ₅₀ + softplus(δ⁺)      (quantiles, ordered)
    q ← clip(q, (min_t x_tj − 2.3 − μ_j)/σ_j, (max_t x_tj + 2.3 − μ_j)/σ_j)   (at most ≈10× beyond
                                          the input windows' range: further is an artefact)
    forecast = g(μ_j + σ_j q₅₀),  interval = g(μ_j + σ_j [q_lo, q_hi])      (normalisation undone)

where j is the node feature that carries target m (request_rate ← requests_per_s, latency_p90_ms ←
latency_p90_ms, latency_p99_ms ← latency_p99_ms, error_ratio ← error_ratio) and g inverts that
feature's transform (expm1 for log1p, clip to [0, 1] for ratios), so outputs are on the original
scale of the dataset's ``targets``. Training objective (train.py): pinball loss at the quantiles
(0.5, 0.1, 0.9) for (q₅₀, q_lo, q_hi), on the normalised transformed targets
ỹ = (T_j(y) − μ_j)/σ_j of the next H windows, where the target is defined (``target_mask``) — so
[q_lo, q_hi] is an 80 % prediction interval. Ablations (benchmark): ``use_graph`` (no graph
convolution: GRU-only), ``use_temporal`` (no GRU: the last slice's graph-convolved state,
GCN-only). Inputs and outputs are the ONNX contract v1 (ARCHITECTURE.md §5); in training,
``window_start`` may also be [T, N] (per node: samples of different times batched together).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from .layers import StackedGraphConv

# (node feature index, transform) of each target of feature schema v1 (docs/dataset-format.md).
SCHEMA_V1_TARGETS: tuple[tuple[int, str], ...] = (
    (6, "log1p"),  # request_rate <- requests_per_s
    (9, "log1p"),  # latency_p90_ms
    (10, "log1p"),  # latency_p99_ms
    (7, "ratio"),  # error_ratio
)


LOG1P_CAP = 30.0  # largest log1p value a forecast is mapped back from
RANGE_MARGIN = 2.3  # how far (transformed units) a forecast may leave the input windows' range


def masked_lower_median(x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """[N, F]: the lower median over the steps of x [T, N, F] where m [T, N, 1] is 1 (the
    ⌊(c − 1)/2⌋-th smallest of the c present values); 0 for a node with no present step.

    A sort over T with absent steps pushed past every value, then one gather: ONNX exports it
    as TopK + GatherElements, for any T. The sort runs on the last axis ([N, F, T]), where
    ONNX Runtime's TopK is fast; over the first it took longer than the rest of the model."""
    xs = torch.where(m > 0, x, torch.full_like(x, 1e9)).permute(1, 2, 0)  # [N, F, T]
    ordered = torch.sort(xs, dim=-1).values
    count = m.sum(0).to(torch.long)  # [N, 1]
    k = torch.div(count - 1, 2, rounding_mode="floor").clamp(min=0)
    # [N, F, 1] by broadcasting, not by sizes read from x (the export would freeze them)
    k = k.unsqueeze(-1) + torch.zeros_like(ordered[..., :1], dtype=torch.long)
    med = ordered.gather(-1, k)[..., 0]
    return med * (count > 0).to(med.dtype)  # 1e9 · 0 = 0 for a node with no present step


class TimeEncoding(nn.Module):
    """φ(τ): time of day, day of week (fixed sin/cos) and K learned frequencies over the week."""

    def __init__(self, learned: int = 8) -> None:
        super().__init__()
        self.freq = nn.Parameter(torch.arange(1, learned + 1, dtype=torch.float32))
        self.phase = nn.Parameter(torch.zeros(learned))
        self.dim = 4 + learned

    def forward(self, ts: torch.Tensor) -> torch.Tensor:
        """ts i64 [T] unix seconds -> [T, 4 + K]. Integer arithmetic first: f32 cannot hold τ."""
        day = torch.remainder(ts, 86400).float() / 86400.0
        days = torch.div(ts, 86400, rounding_mode="floor")
        dow = torch.remainder(days + 3, 7).float() / 7.0
        week = torch.remainder(ts, 604800).float() / 604800.0
        two_pi = 2.0 * math.pi
        fixed = torch.stack(
            [
                torch.sin(two_pi * day),
                torch.cos(two_pi * day),
                torch.sin(two_pi * dow),
                torch.cos(two_pi * dow),
            ],
            -1,
        )
        learned = torch.sin(two_pi * week.unsqueeze(-1) * self.freq + self.phase)
        return torch.cat([fixed, learned], -1)


class Forecaster(nn.Module):
    """GCN per slice + GRU + time encoding: H-step forecasts of M targets with intervals."""

    def __init__(
        self,
        num_features: int,
        edge_features: int,
        horizon: int = 5,
        targets: Sequence[tuple[int, str]] = SCHEMA_V1_TARGETS,
        window_s: int = 60,
        dim: int = 64,
        hops: int = 2,
        learned_frequencies: int = 8,
        sigma_min: float = 0.05,
        use_graph: bool = True,
        use_temporal: bool = True,
        robust_norm: bool = False,
    ) -> None:
        super().__init__()
        self.robust_norm = robust_norm
        self.use_graph = use_graph
        self.use_temporal = use_temporal
        self.horizon = horizon
        self.window_s = int(window_s)
        self.sigma_min = sigma_min
        self.register_buffer(
            "target_index", torch.tensor([i for i, _ in targets], dtype=torch.long)
        )
        self.register_buffer(
            "target_log1p", torch.tensor([tr == "log1p" for _, tr in targets], dtype=torch.bool)
        )
        self.num_targets = len(targets)
        self.time = TimeEncoding(learned_frequencies)
        self.embed = nn.Linear(num_features + 1 + self.time.dim, dim)
        self.gcn = StackedGraphConv(dim, hops, edge_features) if use_graph else None
        self.gru = nn.GRU(dim, dim) if use_temporal else None
        self.last = None if use_temporal else nn.Linear(dim, dim)
        self.head = nn.Sequential(
            nn.Linear(dim + self.time.dim, dim), nn.GELU(), nn.Linear(dim, 3 * self.num_targets)
        )

    def quantiles(
        self,
        node_features: torch.Tensor,
        node_mask: torch.Tensor,
        edge_index: torch.Tensor,
        edge_weight: torch.Tensor,
        edge_features: torch.Tensor,
        window_start: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(q [H, N, M, 3] normalised (q₅₀, q_lo, q_hi), μ_target [N, M], σ_target [N, M])."""
        t, n, _ = node_features.shape
        m = node_mask.unsqueeze(-1)
        if self.robust_norm:
            mu = masked_lower_median(node_features, m)
            sigma = (1.4826 * masked_lower_median((node_features - mu).abs(), m)).clamp(
                min=self.sigma_min
            )
        else:
            cnt = m.sum(0).clamp(min=1.0)  # [N, 1]
            mu = (node_features * m).sum(0) / cnt  # [N, F]
            var = (((node_features - mu) * m) ** 2).sum(0) / cnt
            sigma = torch.sqrt(var + 1e-12).clamp(min=self.sigma_min)
        xn = (node_features - mu) / sigma * m
        phi = self.time(window_start)  # [T, P] or [T, N, P]
        if phi.dim() == 2:
            phi = phi.unsqueeze(1).expand(t, n, phi.shape[-1])
        h = torch.nn.functional.gelu(self.embed(torch.cat([xn, m, phi], -1))) * m
        if self.gcn is not None:
            h = self.gcn(h, node_mask, edge_index, edge_weight, edge_features)
        if self.gru is not None:
            _, last = self.gru(h)  # [1, N, d]
            last = last.squeeze(0)
        else:
            last = torch.nn.functional.gelu(self.last(h[-1]))
        steps = torch.arange(1, self.horizon + 1, dtype=torch.long, device=window_start.device)
        if window_start.dim() == 1:
            phi_f = self.time(window_start[-1] + steps * self.window_s)  # [H, P]
            phi_f = phi_f.unsqueeze(1).expand(self.horizon, n, phi_f.shape[-1])
        else:
            phi_f = self.time(window_start[-1].unsqueeze(0) + steps.unsqueeze(1) * self.window_s)
        z = torch.cat([last.unsqueeze(0).expand(self.horizon, n, last.shape[-1]), phi_f], -1)
        out = self.head(z).view(self.horizon, n, self.num_targets, 3)
        q50 = out[..., 0]
        lo = q50 - torch.nn.functional.softplus(out[..., 1])
        hi = q50 + torch.nn.functional.softplus(out[..., 2])
        mu_t = mu.index_select(1, self.target_index)  # [N, M]
        sd_t = sigma.index_select(1, self.target_index)
        # A median more than RANGE_MARGIN (transformed units: ×e^2.3 ≈ ×10 for log1p targets)
        # beyond the range of the input windows is an extrapolation artefact: bound it, in
        # training and at serving alike.
        xt = node_features.index_select(2, self.target_index)  # [T, N, M]
        big = torch.full_like(xt, 1e9)
        hi_x = torch.where(m > 0, xt, -big).max(0).values  # [N, M]
        lo_x = torch.where(m > 0, xt, big).min(0).values
        seen = (m.sum(0) > 0).to(xt.dtype)  # [N, 1]: nodes with no input window keep μ = 0
        hi_b = ((hi_x * seen + RANGE_MARGIN - mu_t) / sd_t).unsqueeze(0).unsqueeze(-1)
        lo_b = ((lo_x * seen - RANGE_MARGIN - mu_t) / sd_t).unsqueeze(0).unsqueeze(-1)
        q = torch.stack([q50, lo, hi], -1)
        q = torch.minimum(torch.maximum(q, lo_b), hi_b)
        return q, mu_t, sd_t

    def forward(
        self,
        node_features: torch.Tensor,
        node_mask: torch.Tensor,
        edge_index: torch.Tensor,
        edge_weight: torch.Tensor,
        edge_features: torch.Tensor,
        window_start: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Contract inputs -> forecast [H, N, M], forecast_interval [H, N, M, 2] (lower, upper)."""
        qn, mu_t, sd_t = self.quantiles(
            node_features, node_mask, edge_index, edge_weight, edge_features, window_start
        )
        q = qn * sd_t.unsqueeze(-1) + mu_t.unsqueeze(-1)  # [H, N, M, 3]
        log1p = self.target_log1p.view(1, 1, -1, 1)
        # expm1 has no ONNX export in torch 1.13; the cap (e^30 ≈ 1e13) keeps outputs finite
        inv_log1p = torch.exp(q.clamp(min=0.0, max=LOG1P_CAP)) - 1.0
        q = torch.where(log1p, inv_log1p, q.clamp(0.0, 1.0))
        return q[..., 0], q[..., 1:]

    def normalise_targets(
        self, targets: torch.Tensor, mu_t: torch.Tensor, sd_t: torch.Tensor
    ) -> torch.Tensor:
        """ỹ = (T_j(y) − μ_j)/σ_j for raw targets [H, N, M] (the loss's space)."""
        log1p = self.target_log1p.view(1, 1, -1)
        y = torch.where(log1p, torch.log1p(targets.clamp(min=0.0)), targets)
        return (y - mu_t) / sd_t

"""Unsupervised graph-Transformer anomaly detector, after GTF-Net (arXiv 2508.09401).

GTF-Net combines a graph convolution over the multi-hop structure of the service-call graph, a
Transformer over each service's sequence of windows, and a learnable fusion of the structural and
behavioural representations into one anomaly vector, mapped nonlinearly to a score. Here, with
x_t ∈ R^{N×F} the node features of window t = 0..T-1, m_t ∈ {0,1}^N the node mask:

    H_t  = m_t ⊙ GELU(x_t W_in + b_in)                                       (embedding)
    S_t  = GCN_K(H_t; edge_index, w_t, a_t)                      per step   (structural, layers.py)
    u_t  = H_t + S_t + P_t,   t < T-1;    u_{T-1} = q + P_{T-1}             (tokens; P: sinusoidal
                                                                              position of the step)
    B    = TransformerEncoder(u_0..u_{T-1}; key padding = absent history steps)[T-1]  (behaviour)
    C    = Neigh(H_{T-1})    (one hop over the current window, no self term; by default only
                              callee → caller messages: see below)
    g    = σ([B; C] W_g + b_g),   z = g ⊙ B + (1 - g) ⊙ C                   (gated fusion)
    x̂    = z W_o + b_o,   σ̂ = softplus(z W_s + b_s) + ε                     (prediction of x_{T-1})
  with ``conditional`` a second, history-free prediction of the same window:
    ẑ    = MLP([GELU((x_{T-1} ⊙ ℓ) W_c); C]),  x̂' = ẑ W_o',  σ̂' = softplus(ẑ W_s') + ε
                             (ℓ ∈ {0,1}^F keeps only load and identity: kind, presence flags,
                              request and call rates — the node's performance is predicted from
                              its load and its callees, so a fault that lasts longer than the
                              history cannot become its own reference)
    r    = s ⊙ (x_{T-1} - x̂) / σ̂,   r' = s ⊙ (x_{T-1} - x̂') / σ̂',   c = r², c' = r'²  (deviations)
    score = m_{T-1} · softplus(MLP(log1p([c; c'])))                         (nonlinear score)
    feature_contribution = (c + c') / (Σ_f (c + c') + ε)                    (share of each feature)

``score_from`` chooses what the score reads: ``"both"`` (above, the default); ``"conditional"``,
softplus(MLP'(log1p(c'))) and contributions c' / Σ c'; ``"max"``, both heads, each divided by
its own 0.9-quantile over the training node-windows (κ, κ', set by train.py after training):

    score = m_{T-1} · max(softplus(MLP(log1p([c; c']))) / κ, softplus(MLP'(log1p(c'))) / κ')

with the contributions of the head that gives the maximum. A head over [c; c'] learns from the
synthetic perturbations to trust c, which a fault longer than the history hides; the head over
c' alone cannot. docs/models.md ("Which deviations the score reads") has the measurements.

s ∈ {0,1}^{N×F} says which deviations count ("absent is not zero", features.py): a latency of a
node without requests or a resource metric that did not arrive is not compared with anything.
The last step is a learnable query token q, so the Transformer sees only the node's history and
the fusion only its neighbours' current windows: the model *predicts* the current window.
Callers are left out of the current-window context (``current_callers = False``) because what a
caller sees of its calls into a node — client latency, errors, the gap — is the node's own
symptom: with it the model explains a root cause's anomaly away by its callers' view of it.
Callees' states are legitimate context (a slow callee explains a slow caller).

Training (train.py), without labels:
- the predictors minimise the Gaussian negative log-likelihood of x_{T-1} under (x̂, σ̂) (and
  (x̂', σ̂')), Σ s ⊙ (r²/2 + log σ̂) / Σ s over present, unperturbed nodes;
- the score head learns, on the detached deviations, to tell nodes whose current window was
  perturbed synthetically during training (latency shifts, error bursts, traffic changes, resource
  saturation, gap growth: see train.py) from unperturbed ones (binary cross-entropy on the logit
  MLP(log1p([c; c']))). Unperturbed nodes whose total deviation is in the top
  1 − ``train.trim_negatives`` of the batch's unperturbed nodes are left out of that loss: in
  unlabelled data they are likely real faults, and as negatives they would teach the head that
  such deviations are normal. Real fault labels are never used for training; they serve only the
  evaluation.

Ablations (benchmark): ``use_graph`` (no S_t, no C), ``use_temporal`` (B = masked mean of the
history tokens instead of the Transformer), ``use_fusion`` (z = (B + C)/2 instead of the learned
gate), ``use_edge_features`` (messages without a_e). Inputs and outputs are the ONNX contract v1
(ARCHITECTURE.md §5).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from ..features import ALWAYS, feature_gates
from .layers import RelationalGraphConv, StackedGraphConv

LOAD_FEATURES = ("requests_per_s", "out_calls_per_s")


def feature_load_mask(names: Sequence[str] | None, num_features: int) -> torch.Tensor:
    """[F] 1 for what a node's load and identity are (kind one-hots, presence flags, request and
    call rates), 0 for its performance (latencies, errors, gaps, resource use)."""
    if names is None:
        return torch.zeros(num_features)
    return torch.tensor(
        [
            float(n.startswith("kind_") or n.endswith("_present") or n in LOAD_FEATURES)
            for n in names
        ]
    )


def sinusoidal_positions(t: int, dim: int, device: torch.device | None = None) -> torch.Tensor:
    """P [t, dim]: P[i, 2k] = sin(i / 10000^{2k/dim}), P[i, 2k+1] = cos(...)."""
    pos = torch.arange(t, dtype=torch.float32, device=device).unsqueeze(1)
    div = torch.exp(
        torch.arange(0, dim, 2, dtype=torch.float32, device=device) * (-math.log(10000.0) / dim)
    )
    p = torch.zeros(t, dim, device=device)
    p[:, 0::2] = torch.sin(pos * div)
    p[:, 1::2] = torch.cos(pos * div)
    return p


class Detector(nn.Module):
    """GTF-Net-style detector: contract inputs -> anomaly score and per-feature contributions."""

    def __init__(
        self,
        num_features: int,
        edge_features: int,
        dim: int = 64,
        hops: int = 2,
        heads: int = 4,
        layers: int = 2,
        dropout: float = 0.0,
        feature_names: Sequence[str] | None = None,
        use_graph: bool = True,
        use_temporal: bool = True,
        use_fusion: bool = True,
        use_edge_features: bool = True,
        conditional: bool = True,
        current_callers: bool = False,
        score_from: str = "both",
    ) -> None:
        super().__init__()
        if score_from not in ("both", "conditional", "max") or (
            score_from != "both" and not conditional
        ):
            raise ValueError(
                f"score_from = {score_from!r}: 'both', or 'conditional' / 'max' with a "
                "conditional path"
            )
        self.score_from = score_from
        if dim % 2:
            raise ValueError("dim must be even (sinusoidal positions)")
        if feature_names is not None and len(feature_names) != num_features:
            raise ValueError(f"{len(feature_names)} feature names for {num_features} features")
        self.dim = dim
        self.use_graph = use_graph
        self.use_temporal = use_temporal
        self.use_fusion = use_fusion
        edge_dim = edge_features if use_edge_features else 0
        gates = feature_gates(feature_names) if feature_names else [ALWAYS] * num_features
        self.register_buffer("always", torch.tensor([float(g == ALWAYS) for g in gates]))
        self.register_buffer("gated", torch.tensor([float(g >= 0) for g in gates]))
        self.register_buffer("gate_index", torch.tensor([max(g, 0) for g in gates]))
        self.embed = nn.Linear(num_features, dim)
        self.gcn = StackedGraphConv(dim, hops, edge_dim, dropout) if use_graph else None
        self.neigh = RelationalGraphConv(dim, dim, edge_dim, self_loop=False) if use_graph else None
        self.query = nn.Parameter(torch.zeros(dim))
        enc = nn.TransformerEncoderLayer(dim, heads, 2 * dim, dropout, batch_first=True)
        self.temporal = nn.TransformerEncoder(enc, layers) if use_temporal else None
        self.pool = None if use_temporal else nn.Linear(dim, dim)
        self.gate = nn.Linear(2 * dim, dim)
        self.pred = nn.Linear(dim, num_features)
        self.scale = nn.Linear(dim, num_features)
        # conditional path: the node's performance now from its load now and its callees' states
        # (no history, no own performance): a reference that a sustained fault cannot shift
        load = feature_load_mask(feature_names, num_features)
        self.register_buffer("load", load)
        self.cond_embed = nn.Linear(num_features, dim) if conditional else None
        self.cond = (
            nn.Sequential(nn.Linear(2 * dim, dim), nn.GELU(), nn.Linear(dim, dim), nn.GELU())
            if conditional
            else None
        )
        self.cond_pred = nn.Linear(dim, num_features) if conditional else None
        self.cond_scale = nn.Linear(dim, num_features) if conditional else None
        paths = 1 if score_from == "conditional" or not conditional else 2
        self.score = nn.Sequential(
            nn.Linear(paths * num_features, dim), nn.GELU(), nn.Linear(dim, 1)
        )
        # "max": a second head over c' alone, and each head's scale κ (set after training)
        self.score_cond = (
            nn.Sequential(nn.Linear(num_features, dim), nn.GELU(), nn.Linear(dim, 1))
            if score_from == "max"
            else None
        )
        self.score_scales: torch.Tensor | None
        if score_from == "max":
            self.register_buffer("score_scales", torch.ones(2))
        else:
            self.score_scales = None

    def scored(self, x_last: torch.Tensor) -> torch.Tensor:
        """s [N, F]: 1 where the deviation of feature f of node n counts (features.py)."""
        gate_on = (x_last.index_select(1, self.gate_index) > 0).to(x_last.dtype)
        return self.always + self.gated * gate_on

    def predict(
        self,
        node_features: torch.Tensor,
        node_mask: torch.Tensor,
        edge_index: torch.Tensor,
        edge_weight: torch.Tensor,
        edge_features: torch.Tensor,
    ) -> tuple[torch.Tensor, list[tuple[torch.Tensor, torch.Tensor]], torch.Tensor]:
        """(x_{T-1} masked, [(x̂, σ̂) per path], s), each [N, F]: the predictions of the current
        window (history + neighbours; and, with ``conditional``, its load and callees)."""
        t, n, _ = node_features.shape
        m = node_mask.unsqueeze(-1)
        x = node_features * m  # what an absent node carries never matters
        h = torch.nn.functional.gelu(self.embed(x)) * m  # [T, N, d]
        if self.gcn is not None:
            u = h + self.gcn(h, node_mask, edge_index, edge_weight, edge_features)
        else:
            u = h
        hist = u[:-1]  # [T-1, N, d]
        if self.temporal is not None:
            pos = sinusoidal_positions(t, self.dim, x.device)  # [T, d]
            query = self.query.view(1, 1, -1).expand(1, n, self.dim)
            tokens = (torch.cat([hist, query], 0) + pos.unsqueeze(1)).transpose(0, 1)  # [N,T,d]
            pad = torch.cat([node_mask[:-1] < 0.5, torch.zeros_like(node_mask[-1:]) > 0.5], 0)
            b = self.temporal(tokens, src_key_padding_mask=pad.transpose(0, 1))[:, -1]
        else:
            present = node_mask[:-1].unsqueeze(-1)
            mean = (hist * present).sum(0) / present.sum(0).clamp(min=1.0)
            b = torch.nn.functional.gelu(self.pool(mean + self.query))
        if self.neigh is not None:
            c = self.neigh(h[-1:], edge_index, edge_weight[-1:], edge_features[-1:]).squeeze(0)
        else:
            c = torch.zeros_like(b)
        if self.use_fusion:
            g = torch.sigmoid(self.gate(torch.cat([b, c], -1)))
            z = g * b + (1.0 - g) * c
        else:
            z = 0.5 * (b + c)
        x_hat = self.pred(z)
        sigma = torch.nn.functional.softplus(self.scale(z)) + 1e-3
        out = [(x_hat, sigma)]
        if (
            self.cond_embed is not None
            and self.cond is not None
            and self.cond_pred is not None
            and self.cond_scale is not None
        ):
            own = torch.nn.functional.gelu(self.cond_embed(x[-1] * self.load))
            zc = self.cond(torch.cat([own, c], -1))
            out.append(
                (self.cond_pred(zc), torch.nn.functional.softplus(self.cond_scale(zc)) + 1e-3)
            )
        s = self.scored(x[-1]) * node_mask[-1].unsqueeze(-1)
        return x[-1], out, s

    @staticmethod
    def deviations(
        x_last: torch.Tensor, paths: list[tuple[torch.Tensor, torch.Tensor]], s: torch.Tensor
    ) -> list[torch.Tensor]:
        """[c, c′] ([N, F] each, one per path): the squared standardised deviations that count,
        (s ⊙ (x_{T-1} − x̂) / σ̂)²."""
        return [((x_last - x_hat) / sigma * s) ** 2 for x_hat, sigma in paths]

    def score_logits(self, devs: list[torch.Tensor]) -> list[torch.Tensor]:
        """The heads' logits, [N] each: MLP(log1p([c; c′])); with ``score_from =
        "conditional"`` MLP(log1p(c′)) alone; with ``"max"`` both."""
        used = devs[1:] if self.score_from == "conditional" else devs
        logits = [self.score(torch.log1p(torch.cat(used, -1))).squeeze(-1)]
        if self.score_cond is not None:
            logits.append(self.score_cond(torch.log1p(devs[1])).squeeze(-1))
        return logits

    def head_scores(self, devs: list[torch.Tensor]) -> list[torch.Tensor]:
        """softplus of each head's logit, [N] each, before the scales κ."""
        return [torch.nn.functional.softplus(logit) for logit in self.score_logits(devs)]

    def forward(
        self,
        node_features: torch.Tensor,
        node_mask: torch.Tensor,
        edge_index: torch.Tensor,
        edge_weight: torch.Tensor,
        edge_features: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """[T,N,F], [T,N], i64 [2,E], [T,E], [T,E,Fe] -> anomaly_score [N], contribution [N,F]."""
        x_last, paths, s = self.predict(
            node_features, node_mask, edge_index, edge_weight, edge_features
        )
        devs = self.deviations(x_last, paths, s)
        heads = self.head_scores(devs)
        # the explanation is made of the deviations the score reads
        used = devs[1:] if self.score_from == "conditional" else devs
        contrib = used[0] if len(used) == 1 else used[0] + used[1]
        if len(heads) == 1 or self.score_scales is None:
            score = heads[0]
        else:
            a, b = heads[0] / self.score_scales[0], heads[1] / self.score_scales[1]
            score = torch.maximum(a, b)
            contrib = torch.where((b > a).unsqueeze(-1), devs[1], contrib)
        share = contrib / (contrib.sum(-1, keepdim=True) + 1e-6)
        return score * node_mask[-1], share


__all__ = ["Detector", "sinusoidal_positions"]

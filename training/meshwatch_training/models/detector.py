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
    C    = Neigh(H_{T-1})    (one hop, both relations, no self term: the node's own current
                              features never enter its prediction)
    g    = σ([B; C] W_g + b_g),   z = g ⊙ B + (1 - g) ⊙ C                   (gated fusion)
    x̂    = z W_o + b_o,   σ̂ = softplus(z W_s + b_s) + ε                     (prediction of x_{T-1})
    r    = m_{T-1} ⊙ (x_{T-1} - x̂) / σ̂,    c = r²                          (deviation)
    score = m_{T-1} · softplus(MLP(log1p(c)))                               (nonlinear score)
    feature_contribution = c / (Σ_f c + ε)                                   (share of each feature)

The last step is a learnable query token q, so the Transformer sees only the node's history and the
fusion only its neighbours' current windows: the model *predicts* the current window from history
and neighbours, and the score maps the standardised deviation. Training objective (next increment,
no labels): Gaussian negative log-likelihood of x_{T-1} under (x̂, σ̂) on fault-free data.

Inputs and outputs are the ONNX contract v1 (ARCHITECTURE.md §5).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .layers import RelationalGraphConv, StackedGraphConv


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
    ) -> None:
        super().__init__()
        if dim % 2:
            raise ValueError("dim must be even (sinusoidal positions)")
        self.dim = dim
        self.embed = nn.Linear(num_features, dim)
        self.gcn = StackedGraphConv(dim, hops, edge_features, dropout)
        self.neigh = RelationalGraphConv(dim, dim, edge_features, self_loop=False)
        self.query = nn.Parameter(torch.zeros(dim))
        enc = nn.TransformerEncoderLayer(dim, heads, 2 * dim, dropout, batch_first=True)
        self.temporal = nn.TransformerEncoder(enc, layers)
        self.gate = nn.Linear(2 * dim, dim)
        self.pred = nn.Linear(dim, num_features)
        self.scale = nn.Linear(dim, num_features)
        self.score = nn.Sequential(nn.Linear(num_features, dim), nn.GELU(), nn.Linear(dim, 1))

    def forward(
        self,
        node_features: torch.Tensor,
        node_mask: torch.Tensor,
        edge_index: torch.Tensor,
        edge_weight: torch.Tensor,
        edge_features: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """[T,N,F], [T,N], i64 [2,E], [T,E], [T,E,Fe] -> anomaly_score [N], contribution [N,F]."""
        t, n, _ = node_features.shape
        m = node_mask.unsqueeze(-1)
        x = node_features * m  # what an absent node carries never matters
        h = torch.nn.functional.gelu(self.embed(x)) * m  # [T, N, d]
        s = self.gcn(h, node_mask, edge_index, edge_weight, edge_features)  # [T, N, d]
        pos = sinusoidal_positions(t, self.dim, x.device)  # [T, d]
        hist = (h + s)[:-1]  # [T-1, N, d]
        query = self.query.view(1, 1, -1).expand(1, n, self.dim)
        tokens = torch.cat([hist, query], 0) + pos.unsqueeze(1)  # [T, N, d]
        tokens = tokens.transpose(0, 1)  # [N, T, d]
        pad = torch.cat([node_mask[:-1] < 0.5, torch.zeros_like(node_mask[-1:]) > 0.5], 0)
        b = self.temporal(tokens, src_key_padding_mask=pad.transpose(0, 1))[:, -1]  # [N, d]
        c = self.neigh(h[-1:], edge_index, edge_weight[-1:], edge_features[-1:]).squeeze(
            0
        )  # [N, d]
        g = torch.sigmoid(self.gate(torch.cat([b, c], -1)))
        z = g * b + (1.0 - g) * c
        x_hat = self.pred(z)
        sigma = torch.nn.functional.softplus(self.scale(z)) + 1e-3
        m_last = node_mask[-1].unsqueeze(-1)  # [N, 1]
        r = (x[-1] - x_hat) / sigma * m_last
        contrib = r * r  # [N, F]
        score = torch.nn.functional.softplus(self.score(torch.log1p(contrib))).squeeze(-1)
        score = score * node_mask[-1]
        share = contrib / (contrib.sum(-1, keepdim=True) + 1e-6)
        return score, share

"""Shapes and invariances of the detector, the forecaster and the message-passing layer."""

from __future__ import annotations

import resource

import numpy as np
import pytest
import torch
from conftest import FE, F, M, synthetic_sample

from meshwatch_training.data import collate
from meshwatch_training.models import Detector, Forecaster, StackedGraphConv

H = 3
SHAPES = [(1, 1, 0), (3, 1, 0), (1, 4, 5), (4, 7, 0), (5, 10, 30), (6, 3, 9)]


def models() -> list[torch.nn.Module]:
    torch.manual_seed(0)
    return [Detector(F, FE, dim=32, hops=2).eval(), Forecaster(F, FE, horizon=H, dim=32).eval()]


def run(model: torch.nn.Module, b) -> tuple[torch.Tensor, torch.Tensor]:
    with torch.no_grad():
        if isinstance(model, Forecaster):
            return model(*b.model_inputs(), b.window_start)
        return model(*b.model_inputs())


@pytest.mark.parametrize(("t", "n", "e"), SHAPES)
def test_output_shapes(t: int, n: int, e: int) -> None:
    b = collate([synthetic_sample(t, n, e)])
    det, fc = models()
    score, contrib = run(det, b)
    assert score.shape == (n,) and score.dtype == torch.float32
    assert contrib.shape == (n, F)
    assert torch.isfinite(score).all() and torch.isfinite(contrib).all()
    assert (score >= 0).all()
    sums = contrib.sum(-1)
    present = b.node_mask[-1] > 0
    assert torch.allclose(sums[present], torch.ones_like(sums[present]), atol=1e-3)
    assert (score[~present] == 0).all()
    fcast, interval = run(fc, b)
    assert fcast.shape == (H, n, M) and interval.shape == (H, n, M, 2)
    assert torch.isfinite(fcast).all() and torch.isfinite(interval).all()
    assert (interval[..., 0] <= fcast + 1e-5).all() and (fcast <= interval[..., 1] + 1e-5).all()
    assert (fcast >= 0).all() and (fcast[..., 3] <= 1).all()


def test_node_permutation_permutes_outputs() -> None:
    s = synthetic_sample(5, 9, 20)
    perm = np.random.default_rng(1).permutation(9)
    inv = np.argsort(perm)
    p = synthetic_sample(5, 9, 20)
    p.node_features = s.node_features[:, perm]
    p.node_mask = s.node_mask[:, perm]
    p.edge_index = inv[s.edge_index]  # new index of old node i is inv[i]
    a, b = collate([s]), collate([p])
    for model in models():
        for out_a, out_b in zip(run(model, a), run(model, b), strict=False):
            node_axis = 0 if out_a.dim() <= 2 else 1
            expect = out_a.index_select(node_axis, torch.from_numpy(perm))
            assert torch.allclose(expect, out_b, atol=1e-5), type(model).__name__


def test_disjoint_union_equals_each_graph_alone() -> None:
    s1, s2 = synthetic_sample(4, 6, 12, seed=1), synthetic_sample(4, 3, 0, seed=2)
    both = collate([s1, s2])
    assert both.edge_index.shape == (2, 12)
    assert both.node_offset.tolist() == [0, 6, 9]
    for model in models():
        alone = [run(model, collate([s])) for s in (s1, s2)]
        joint = run(model, both)
        for k, out in enumerate(joint):
            node_axis = 0 if out.dim() <= 2 else 1
            expect = torch.cat([alone[0][k], alone[1][k]], node_axis)
            assert torch.allclose(expect, out, atol=1e-5), type(model).__name__


def test_absent_steps_and_edges_carry_nothing() -> None:
    """Values where node_mask (or edge_weight) is 0 do not change any output."""
    s = synthetic_sample(6, 8, 20, seed=3)
    noisy = synthetic_sample(6, 8, 20, seed=3)
    absent = s.node_mask == 0
    assert absent.any()
    noisy.node_features = s.node_features + 100.0 * absent[..., None]
    noisy.edge_features = s.edge_features + 100.0 * (s.edge_weight == 0)[..., None]
    for model in models():
        for a, b in zip(run(model, collate([s])), run(model, collate([noisy])), strict=False):
            assert torch.allclose(a, b, atol=1e-5), type(model).__name__


def test_masked_history_step_only_changes_that_node() -> None:
    """Masking a past step of node 0 leaves the scores of nodes without edges to it unchanged."""
    s = synthetic_sample(5, 4, 0, seed=4)
    s.node_mask[:] = 1.0
    masked = synthetic_sample(5, 4, 0, seed=4)
    masked.node_mask[:] = 1.0
    masked.node_mask[1, 0] = 0.0
    det = models()[0]
    a, _ = run(det, collate([s]))
    b, _ = run(det, collate([masked]))
    assert torch.allclose(a[1:], b[1:], atol=1e-6)
    assert not torch.allclose(a[:1], b[:1])


def test_edge_list_scales_to_50k_nodes_200k_edges_on_cpu() -> None:
    """A dense N×N adjacency would need 10 GB here; the edge-list layer needs a few hundred MB.

    The memory bound is the check that no dense adjacency is built (speed is a benchmark's job,
    not a test's)."""
    n, e, t, d = 50_000, 200_000, 2, 16
    g = torch.Generator().manual_seed(0)
    x = torch.randn(t, n, d, generator=g)
    ei = torch.randint(0, n, (2, e), generator=g)
    layer = StackedGraphConv(d, hops=2, edge_dim=FE)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    with torch.no_grad():
        out = layer(x, torch.ones(t, n), ei, torch.ones(t, e), torch.randn(t, e, FE, generator=g))
        score, _ = Detector(F, FE, dim=16, hops=2, layers=1).eval()(
            torch.randn(t, n, F, generator=g),
            torch.ones(t, n),
            ei,
            torch.ones(t, e),
            torch.randn(t, e, FE, generator=g),
        )
    grew_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert out.shape == (t, n, d) and score.shape == (n,)
    assert torch.isfinite(out).all() and torch.isfinite(score).all()
    assert grew_mib < 2048, f"peak RSS grew {grew_mib:.0f} MiB"


def test_training_step_gives_finite_gradients() -> None:
    b = collate([synthetic_sample(4, 6, 10)])
    for model in models():
        model.train()
        outs = run_grad(model, b)
        loss = sum(o.float().mean() for o in outs)
        loss.backward()
        grads = [p.grad for p in model.parameters() if p.grad is not None]
        assert grads and all(torch.isfinite(g).all() for g in grads)


def run_grad(model: torch.nn.Module, b) -> tuple[torch.Tensor, torch.Tensor]:
    if isinstance(model, Forecaster):
        return model(*b.model_inputs(), b.window_start)
    return model(*b.model_inputs())


@pytest.mark.parametrize(("t", "n", "e"), [(1, 1, 0), (2, 5, 9), (3, 6, 14)])
def test_relational_conv_is_the_documented_sum_over_edges(t: int, n: int, e: int) -> None:
    """layers.py: M⁺_v = 1/max(deg⁺_v, 1) Σ_{e=(u→v)} w_e (X_u W⁺ + a_e U⁺) (and M⁻ the same way
    the other direction), computed here edge by edge; the layer sums the edge features before
    projecting them and shares the degrees across hops, which must not change the result."""
    from meshwatch_training.models.layers import EdgeAggregates, RelationalGraphConv

    g = torch.Generator().manual_seed(3)
    d, fe = 8, 4
    conv = RelationalGraphConv(d, d, fe)
    x = torch.randn(t, n, d, generator=g)
    ei = torch.randint(0, n, (2, e), generator=g)
    w = (torch.rand(t, e, generator=g) > 0.3).float()
    a = torch.randn(t, e, fe, generator=g)
    want = torch.zeros(t, n, d)
    with torch.no_grad():
        for s in range(t):
            fwd, bwd = torch.zeros(n, d), torch.zeros(n, d)
            deg_in, deg_out = torch.zeros(n), torch.zeros(n)
            for k in range(e):
                u, v = int(ei[0, k]), int(ei[1, k])
                fwd[v] += w[s, k] * (conv.w_fwd(x[s, u]) + conv.u_fwd(a[s, k]))
                bwd[u] += w[s, k] * (conv.w_bwd(x[s, v]) + conv.u_bwd(a[s, k]))
                deg_in[v] += w[s, k]
                deg_out[u] += w[s, k]
            want[s] = (
                fwd / deg_in.clamp(min=1.0).unsqueeze(-1)
                + bwd / deg_out.clamp(min=1.0).unsqueeze(-1)
                + conv.w_self(x[s])
            )
        alone = conv(x, ei, w, a)
        shared = conv(x, ei, w, a, EdgeAggregates(ei, w, a, n))
    torch.testing.assert_close(alone, want, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(shared, want, atol=1e-5, rtol=1e-4)


def test_a_score_from_the_history_free_path_ignores_the_history() -> None:
    """With ``score_from = "conditional"`` the score and its explanation read the history-free
    deviations only: changing a past window changes nothing; the default score does change."""
    s = synthetic_sample(5, 4, 6, seed=2)
    s.node_mask[:] = 1.0
    changed = synthetic_sample(5, 4, 6, seed=2)
    changed.node_mask[:] = 1.0
    changed.node_features[1] += 3.0
    torch.manual_seed(0)
    cond = Detector(F, FE, dim=32, hops=2, score_from="conditional").eval()
    assert cond.score[0].in_features == F
    a, ca = run(cond, collate([s]))
    b, cb = run(cond, collate([changed]))
    assert torch.equal(a, b) and torch.equal(ca, cb)
    both = models()[0]
    assert both.score[0].in_features == 2 * F
    assert not torch.allclose(run(both, collate([s]))[0], run(both, collate([changed]))[0])
    with pytest.raises(ValueError, match="score_from"):
        Detector(F, FE, dim=32, score_from="conditional", conditional=False)

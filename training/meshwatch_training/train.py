"""Training of the detector and the forecaster (``python -m meshwatch_training train``).

Samples are sequences of windows from a dataset of ``meshwatch dataset build``: T windows for the
detector (it scores the last), T + H for the forecaster (T in, the next H are the targets). Several
samples form one batch as a disjoint-union graph (data.collate). No fault label is read here.

Detector objective (no labels; models/detector.py):
    L = NLL + λ · BCE,
    NLL = Σ_{n clean, f} s_nf (r_nf²/2 + log σ̂_nf) / Σ s_nf      (prediction of the current window)
    BCE = binary cross-entropy of MLP(log1p(c_n)) against y_n    (score head, on detached c)
where a share ``inject_rate`` of the present nodes of every sample gets a synthetic perturbation of
its current window (y_n = 1) — see ``inject`` — and the NLL is taken over the other nodes only;
with ``trim_negatives`` = q, the unperturbed nodes above the q-quantile of Σ c_n are left out of
the BCE (``score_loss_weights``: likely real faults of the unlabelled data).

Forecaster objective: pinball loss Σ_q max(q·e, (q−1)·e), e = ỹ − q̂, at q = 0.5, 0.1, 0.9 over the
normalised targets of the next H windows where ``target_mask`` is 1 (models/forecaster.py).

Seeds are fixed (torch, numpy); CPU by default, CUDA when ``train.device`` is auto and CUDA is
present. On CPU the same config and data give the same weights.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from .config import Config
from .data import Dataset, Sample, collate
from .models import Detector, Forecaster
from .ranges import parse_range
from .timeline import compute_has_spans

log = logging.getLogger("meshwatch_training.train")

QUANTILES = (0.5, 0.1, 0.9)


def pick_device(spec: str) -> torch.device:
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(spec)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"train.device = {spec!r} but CUDA is not available to PyTorch")
    return dev


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed)  # noqa: NPY002 - third-party code may draw from the global generator


# --- samples ----------------------------------------------------------------------------------


def traceless_steps(s: Sample, names: Sequence[str]) -> np.ndarray:
    """bool [T]: windows of the sample without trace data (``timeline.compute_has_spans``).

    Datasets whose traces were cut to minutes around events (Nezha) have windows that carry only
    resource metrics; with ``data.drop_traceless`` they count as missing steps, not as traffic 0.
    """
    return ~compute_has_spans(s.node_features, s.edge_weight, s.step_mask, list(names))


def mask_traceless(s: Sample, names: Sequence[str]) -> Sample:
    gone = traceless_steps(s, names)
    if gone.any():
        keep = (~gone).astype(np.float32)
        s.node_mask = s.node_mask * keep[:, None]
        s.node_features = s.node_features * keep[:, None, None]
        s.edge_weight = s.edge_weight * keep[:, None]
        s.edge_features = s.edge_features * keep[:, None, None]
        s.target_mask = s.target_mask * keep[:, None, None]
        s.step_mask = s.step_mask * keep
    return s


@dataclass
class SampleSet:
    samples: list[Sample]
    graphs: list[str]
    first_window: dict[str, int] = field(default_factory=dict)
    last_window: dict[str, int] = field(default_factory=dict)


def load_samples(
    dataset: Dataset,
    length: int,
    time_range: str = "0%..100%",
    drop_traceless: bool = False,
    graphs: Sequence[str] = (),
    anchor: int | None = None,
) -> SampleSet:
    """Every sequence of ``length`` windows whose window ``anchor`` (default: the last) has spans
    and present nodes and lies in ``time_range``.

    Percentages in the range are of each graph's span from the first to the last such anchor
    window (so a day of metrics around an hour of traces does not stretch the span).
    """
    rng = parse_range(time_range)
    anchor = length - 1 if anchor is None else anchor
    kept: list[Sample] = []
    for s in dataset.windows(length):
        if graphs and s.graph not in graphs:
            continue
        if drop_traceless:
            s = mask_traceless(s, dataset.node_feature_names)
        if s.step_mask[anchor] <= 0 or s.node_mask[anchor].sum() <= 0:
            continue
        kept.append(s)
    out = SampleSet([], [])
    starts: dict[str, list[int]] = {}
    for s in kept:
        starts.setdefault(s.graph, []).append(int(s.window_start[anchor]))
    for g, v in starts.items():
        out.first_window[g], out.last_window[g] = min(v), max(v)
    for s in kept:
        first, last = out.first_window[s.graph], out.last_window[s.graph]
        if rng.mask(s.window_start[anchor : anchor + 1], first, last)[0]:
            out.samples.append(s)
            if s.graph not in out.graphs:
                out.graphs.append(s.graph)
    return out


def split_validation(samples: list[Sample], fraction: float) -> tuple[list[Sample], list[Sample]]:
    """The latest ``fraction`` of each graph's samples (by time) for validation."""
    if fraction <= 0 or len(samples) < 10:
        return samples, []
    train, val = [], []
    by_graph: dict[str, list[Sample]] = {}
    for s in samples:
        by_graph.setdefault(s.graph, []).append(s)
    for group in by_graph.values():
        group.sort(key=lambda s: int(s.window_start[-1]))
        cut = len(group) - max(1, round(len(group) * fraction))
        train += group[:cut]
        val += group[cut:]
    return train, val


# --- synthetic perturbations (detector's score head) -----------------------------------------


def _idx(names: Sequence[str], *wanted: str) -> list[int]:
    return [names.index(w) for w in wanted if w in names]


def inject(
    x_last: torch.Tensor,
    mask_last: torch.Tensor,
    names: Sequence[str],
    rate: float,
    gen: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Perturb the current window of a random ``rate`` share of the present nodes.

    Values are in the feature space (log1p for rates and latencies, ratios in [0, 1]). Each chosen
    node gets one kind, drawn uniformly; a kind that finds nothing to change on the node (e.g. a
    latency shift on a node without requests) leaves it unperturbed with y = 0:
    - latency: + U(ln 1.5, ln 20) on latency_p50/p90/p99 (a 1.5–20× slowdown), where it served;
    - errors: error_ratio ← max(error_ratio, U(0.05, 1)), where it served;
    - traffic: requests_per_s ± U(0.7, 2.5) (×2–12 or ÷2–12), clipped at 0;
    - downstream: + U(ln 1.5, ln 20) on out_latency_p90_ms, where it called;
    - gap: + U(1, 4) on in_gap_p50/p90 (signed log1p ms), where the gap is present;
    - resources: cpu_utilization / memory_utilization + U(0.2, 0.8) clipped to 1, where present;
    - generic: every scored feature + N(0, 1)·U(1, 3), where it counts.
    Returns (perturbed x_last, y [N] in {0, 1}).
    """
    n, _ = x_last.shape
    dev = x_last.device
    x = x_last.clone()
    y = torch.zeros(n, device=dev)
    present = (mask_last > 0).nonzero().flatten().cpu()
    k = round(rate * len(present))
    if k == 0:
        return x, y
    pick = present[torch.randperm(len(present), generator=gen)[:k]]
    kinds = torch.randint(0, 7, (k,), generator=gen)
    req, out = _idx(names, "requests_per_s"), _idx(names, "out_calls_per_s")
    lat = _idx(names, "latency_p50_ms", "latency_p90_ms", "latency_p99_ms")
    err = _idx(names, "error_ratio")
    out_lat = _idx(names, "out_latency_p90_ms")
    gap, gap_on = _idx(names, "in_gap_p50_ms", "in_gap_p90_ms"), _idx(names, "in_gap_present")
    res = [
        (i, names.index(f"{names[i]}_present"))
        for i in _idx(names, "cpu_utilization", "memory_utilization")
        if f"{names[i]}_present" in names
    ]
    scorable = [
        i for i, nm in enumerate(names) if not (nm.startswith("kind_") or nm.endswith("_present"))
    ]

    def u(lo: float, hi: float) -> float:
        return float(lo + (hi - lo) * torch.rand((), generator=gen))

    for node, kind in zip(pick.tolist(), kinds.tolist(), strict=False):
        served = bool(req) and bool(x[node, req[0]] > 0)
        called = bool(out) and bool(x[node, out[0]] > 0)
        changed = False
        if kind == 0 and served and lat:
            x[node, lat] += u(math.log(1.5), math.log(20.0))
            changed = True
        elif kind == 1 and served and err:
            x[node, err[0]] = max(float(x[node, err[0]]), u(0.05, 1.0))
            changed = True
        elif kind == 2 and req:
            sign = 1.0 if torch.rand((), generator=gen) < 0.5 else -1.0
            x[node, req[0]] = (x[node, req[0]] + sign * u(0.7, 2.5)).clamp(min=0.0)
            changed = bool(x[node, req[0]] != x_last[node, req[0]])
        elif kind == 3 and called and out_lat:
            x[node, out_lat[0]] += u(math.log(1.5), math.log(20.0))
            changed = True
        elif kind == 4 and gap and gap_on and x[node, gap_on[0]] > 0:
            x[node, gap] += u(1.0, 4.0)
            changed = True
        elif kind == 5:
            for i, p in res:
                if x[node, p] > 0:
                    x[node, i] = (x[node, i] + u(0.2, 0.8)).clamp(max=1.0)
                    changed = True
        elif kind == 6 and scorable:
            noise = torch.randn(len(scorable), generator=gen) * u(1.0, 3.0)
            x[node, scorable] += noise.to(dev)
            changed = True
        if changed:
            y[node] = 1.0
    return x, y


# --- loops ------------------------------------------------------------------------------------


def build_model(cfg: Config, dataset: Dataset) -> torch.nn.Module:
    m = cfg.model
    f, fe = len(dataset.node_feature_names), len(dataset.edge_feature_names)
    if m.kind == "detector":
        return Detector(
            f,
            fe,
            dim=m.dim,
            hops=m.hops,
            heads=m.heads,
            layers=m.layers,
            dropout=m.dropout,
            feature_names=dataset.node_feature_names,
            use_graph=m.use_graph,
            use_temporal=m.use_temporal,
            use_fusion=m.use_fusion,
            use_edge_features=m.use_edge_features,
            conditional=m.conditional,
            current_callers=m.current_callers,
            score_from=m.score_from,
        )
    return Forecaster(
        f,
        fe,
        horizon=m.horizon,
        window_s=int(dataset.manifest["window_ms"]) // 1000 or 1,
        dim=m.dim,
        hops=m.hops,
        learned_frequencies=m.learned_frequencies,
        robust_norm=m.robust_norm,
        use_graph=m.use_graph,
        use_temporal=m.use_temporal,
    )


def _to(b, device: torch.device):
    for k, v in vars(b).items():
        if isinstance(v, torch.Tensor):
            setattr(b, k, v.to(device))
    return b


def score_loss_weights(
    devs: Sequence[torch.Tensor], y: torch.Tensor, mask_last: torch.Tensor, trim: float
) -> torch.Tensor:
    """[N] weight of each node in the score head's loss: 1 for present nodes, except unperturbed
    ones (y = 0) whose total deviation Σ_paths Σ_f c_f is above the ``trim`` quantile of the
    unperturbed present nodes' in the batch (``trim`` = 0: none left out).

    The training data has no labels and, in practice, faults of its own: an unperturbed node in
    a real fault deviates from both predictions, and as a negative it teaches the head that such
    deviations are normal — on Nezha the head learned to trust only the history-based deviation,
    which a fault older than the history hides (docs/models.md). Leaving the most deviant
    negatives out (a trimmed loss, as robust statistics trim outliers) keeps them from teaching
    that; the perturbed positives are all kept."""
    present = (mask_last > 0).to(mask_last.dtype)
    if trim <= 0.0:
        return present
    total = torch.stack([d.sum(-1) for d in devs], 0).sum(0)  # [N]
    negative = (present > 0) & (y < 0.5)
    if int(negative.sum()) < 2:
        return present
    cut = torch.quantile(total[negative], trim)
    return present * (~(negative & (total > cut))).to(present.dtype)


def detector_loss(
    model: Detector,
    samples: Sequence[Sample],
    names: Sequence[str],
    cfg: Config,
    gen: torch.Generator | None,
    device: torch.device,
) -> tuple[torch.Tensor, dict[str, float]]:
    b = _to(collate(samples, same_time=False), device)
    x = b.node_features
    y = torch.zeros(x.shape[1], device=device)
    if gen is not None and cfg.train.inject_rate > 0:
        x_last, y = inject(x[-1], b.node_mask[-1], names, cfg.train.inject_rate, gen)
        x = torch.cat([x[:-1], x_last.unsqueeze(0)], 0)
    x_last, paths, s = model.predict(x, b.node_mask, b.edge_index, b.edge_weight, b.edge_features)
    clean = s * (1.0 - y).unsqueeze(-1)
    nll = x.new_zeros(())
    devs = []
    for x_hat, sigma in paths:
        r = (x_last - x_hat) / sigma
        nll = nll + (clean * (0.5 * r * r + torch.log(sigma))).sum() / clean.sum().clamp(min=1.0)
        devs.append((r * s).detach() ** 2)
    present = score_loss_weights(devs, y, b.node_mask[-1], cfg.train.trim_negatives)
    bce = x.new_zeros(())
    for logit in model.score_logits(devs):  # one head, or two with score_from = "max"
        bce_all = torch.nn.functional.binary_cross_entropy_with_logits(logit, y, reduction="none")
        bce = bce + (bce_all * present).sum() / present.sum().clamp(min=1.0)
    loss = nll + cfg.train.score_weight * bce
    return loss, {"nll": float(nll), "bce": float(bce)}


def pinball(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Σ over quantiles of max(q·e, (q−1)·e), e = target − pred, averaged over masked cells."""
    total = pred.new_zeros(())
    for k, q in enumerate(QUANTILES):
        e = target - pred[..., k]
        total = total + (torch.maximum(q * e, (q - 1.0) * e) * mask).sum()
    return total / mask.sum().clamp(min=1.0)


def forecaster_loss(
    model: Forecaster, samples: Sequence[Sample], t: int, device: torch.device
) -> tuple[torch.Tensor, dict[str, float]]:
    b = _to(collate(samples, same_time=False), device)
    ws = torch.from_numpy(np.stack([s.window_start for s in samples], 1)).to(device)  # [T+H, B]
    ws_nodes = ws.index_select(1, b.node_graph)  # [T+H, N]
    inputs = (
        b.node_features[:t],
        b.node_mask[:t],
        b.edge_index,
        b.edge_weight[:t],
        b.edge_features[:t],
        ws_nodes[:t],
    )
    qn, mu_t, sd_t = model.quantiles(*inputs)
    y = model.normalise_targets(b.targets[t:], mu_t, sd_t)
    mask = b.target_mask[t:] * b.node_mask[t:].unsqueeze(-1)
    # a node without any history has μ, σ of nothing: no loss for it
    mask = mask * (b.node_mask[:t].sum(0) > 0).float().view(1, -1, 1)
    loss = pinball(qn, y, mask)
    return loss, {"pinball": float(loss)}


@dataclass
class TrainResult:
    model: torch.nn.Module
    history: list[dict[str, float]]
    samples_train: int
    samples_validation: int
    seconds: float
    device: str


def train(
    cfg: Config,
    dataset: Dataset,
    samples: Sequence[Sample] | None = None,
    progress: Callable[[dict[str, float]], None] | None = None,
) -> TrainResult:
    """Train the configured model on ``samples`` (default: the config's train range)."""
    seed_everything(cfg.train.seed)
    device = pick_device(cfg.train.device)
    t = cfg.data.steps
    length = t + (cfg.model.horizon if cfg.model.kind == "forecaster" else 0)
    if samples is None:
        samples = load_samples(
            dataset,
            length,
            cfg.data.train_range,
            cfg.data.drop_traceless,
            cfg.data.graphs,
            anchor=t - 1,
        ).samples
    samples = list(samples)
    if not samples:
        raise ValueError(
            f"no training samples of {length} windows in range {cfg.data.train_range!r} "
            f"of {dataset.root}"
        )
    rng = np.random.default_rng(cfg.train.seed)
    if cfg.train.max_samples and len(samples) > cfg.train.max_samples:
        keep = np.sort(rng.choice(len(samples), cfg.train.max_samples, replace=False))
        samples = [samples[i] for i in keep]
    train_set, val_set = split_validation(samples, cfg.train.validation_fraction)
    model = build_model(cfg, dataset).to(device)
    opt = torch.optim.AdamW(
        model.parameters(), lr=cfg.train.lr, weight_decay=cfg.train.weight_decay
    )
    steps_per_epoch = math.ceil(len(train_set) / cfg.train.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=cfg.train.lr, total_steps=max(1, steps_per_epoch * cfg.train.epochs)
    )
    gen = torch.Generator().manual_seed(cfg.train.seed)
    names = dataset.node_feature_names
    history: list[dict[str, float]] = []
    start = time.monotonic()

    def step_loss(batch, g):
        if cfg.model.kind == "detector":
            return detector_loss(model, batch, names, cfg, g, device)
        return forecaster_loss(model, batch, t, device)

    for epoch in range(cfg.train.epochs):
        model.train()
        order = rng.permutation(len(train_set))
        parts: dict[str, float] = {}
        for i in range(steps_per_epoch):
            batch = [
                train_set[j]
                for j in order[i * cfg.train.batch_size : (i + 1) * cfg.train.batch_size]
            ]
            loss, info = step_loss(batch, gen)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.train.grad_clip)
            opt.step()
            sched.step()
            for k, v in info.items():
                parts[k] = parts.get(k, 0.0) + v / steps_per_epoch
        row = {"epoch": float(epoch + 1), **{f"train_{k}": v for k, v in parts.items()}}
        if val_set:
            row.update(
                {
                    f"val_{k}": v
                    for k, v in evaluate_loss(model, val_set, cfg, dataset, device).items()
                }
            )
        row["seconds"] = time.monotonic() - start
        history.append(row)
        if progress is not None:
            progress(row)
        if row["seconds"] > cfg.train.max_minutes * 60:
            log.warning("stopping after epoch %d: train.max_minutes reached", epoch + 1)
            break
    model.eval()
    if cfg.model.kind == "detector" and cfg.model.score_from == "max":
        calibrate_heads(model, samples, cfg, device)
    return TrainResult(
        model.cpu(),
        history,
        len(train_set),
        len(val_set),
        time.monotonic() - start,
        str(device),
    )


CALIBRATION_QUANTILE = 0.9


@torch.no_grad()
def calibrate_heads(
    model: torch.nn.Module,
    samples: Sequence[Sample],
    cfg: Config,
    device: torch.device,
) -> None:
    """``score_from = "max"``: sets each head's scale κ to the 0.9-quantile of its score over the
    present nodes of the training samples' last windows (unperturbed), so that the two heads'
    scores are in the same unit — "as unusual as the top tenth of training" — before the max."""
    per_head: list[list[torch.Tensor]] = [[] for _ in range(len(model.score_scales))]
    for i in range(0, len(samples), cfg.train.batch_size):
        b = _to(collate(samples[i : i + cfg.train.batch_size], same_time=False), device)
        devs = model.deviations(*model.predict(*b.model_inputs()))
        present = b.node_mask[-1] > 0
        for scores, score in zip(per_head, model.head_scores(devs), strict=True):
            scores.append(score[present])
    scales = [
        float(torch.quantile(torch.cat(scores), CALIBRATION_QUANTILE)) if scores else 1.0
        for scores in per_head
    ]
    model.score_scales.copy_(torch.tensor(scales).clamp(min=1e-6))
    log.info("score heads calibrated: κ = %s", ", ".join(f"{v:.4g}" for v in scales))


@torch.no_grad()
def evaluate_loss(
    model: torch.nn.Module,
    samples: Sequence[Sample],
    cfg: Config,
    dataset: Dataset,
    device: torch.device,
) -> dict[str, float]:
    """Mean loss parts over ``samples`` in eval mode, with a fixed perturbation draw."""
    model.eval()
    gen = torch.Generator().manual_seed(cfg.train.seed + 1)
    totals: dict[str, float] = {}
    batches = [
        samples[i : i + cfg.train.batch_size] for i in range(0, len(samples), cfg.train.batch_size)
    ]
    for batch in batches:
        if cfg.model.kind == "detector":
            _, info = detector_loss(model, batch, dataset.node_feature_names, cfg, gen, device)
        else:
            _, info = forecaster_loss(model, batch, cfg.data.steps, device)
        for k, v in info.items():
            totals[k] = totals.get(k, 0.0) + v / len(batches)
    model.train()
    return totals

"""Forecasting baselines and metrics on a :class:`~meshwatch_training.timeline.Timeline`.

The forecast targets are ``timeline.targets [W, N, M]`` (raw scale: requests/s, ms, ratio) where
``target_mask`` is 1. From a forecast origin w (a test window with spans) a forecaster predicts
the targets of the grid windows w + 1 .. w + H (``window_start_ms[w] + h · window_ms``; a grid
window the timeline does not hold is not scored).

Every baseline: ``fn(timeline, train_mask [W] bool, test_mask [W] bool, horizon H) -> pred
[W, H, N, M]`` float32, ``pred[w, h − 1]`` = forecast of window w + h made at origin w, NaN where
not forecast (non-origins, no usable history, or a baseline that does not apply).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from ..timeline import Timeline

DAY_MS = 86_400_000


def forecast_origins(tl: Timeline, test_mask: np.ndarray) -> np.ndarray:
    """[W] bool: the test windows with spans (where a forecaster is run)."""
    return np.asarray(test_mask, dtype=bool) & tl.has_spans


def _ffill(y: np.ndarray) -> np.ndarray:
    """Forward-fill NaNs along axis 0 (leading NaNs stay)."""
    idx = np.where(~np.isnan(y), np.arange(y.shape[0])[:, None], -1)
    np.maximum.accumulate(idx, axis=0, out=idx)
    out = y[np.maximum(idx, 0), np.arange(y.shape[1])[None, :]]
    return np.where(idx >= 0, out, np.nan)


def last_value(tl: Timeline, train_mask, test_mask, horizon: int) -> np.ndarray:
    """Persistence: every horizon gets the latest defined value (``target_mask`` 1) of the
    (node, target) at or before the origin, whatever window it came from (train or test range;
    history before the origin is known at forecast time). NaN if the series has no value yet."""
    w, n, m = tl.targets.shape
    y = np.where(tl.target_mask > 0, tl.targets, np.nan).reshape(w, n * m).astype(np.float64)
    last = _ffill(y).reshape(w, n, m)
    pred = np.full((w, horizon, n, m), np.nan, dtype=np.float32)
    org = forecast_origins(tl, test_mask)
    pred[org] = last[org][:, None]
    return pred


def seasonal_naive(
    tl: Timeline, train_mask, test_mask, horizon: int, season_ms: int = DAY_MS
) -> np.ndarray:
    """Seasonal naive: the forecast of window w + h is the value of grid window
    w + h − season (season = ``season_ms`` / window, one day by default) when the timeline holds
    it with ``target_mask`` 1, else NaN ("not applicable": with under a day of history this
    baseline forecasts nothing). Needs season > H so the value is known at the origin."""
    w, n, m = tl.targets.shape
    season = season_ms // tl.window_ms
    pred = np.full((w, horizon, n, m), np.nan, dtype=np.float32)
    if season <= horizon:
        raise ValueError(f"season of {season} windows must exceed the horizon {horizon}")
    org = forecast_origins(tl, test_mask)
    src = tl.grid_offset(np.arange(1, horizon + 1) - season)  # [W, H]
    for h in range(horizon):
        ok = org & (src[:, h] >= 0)
        s = src[ok, h]
        vals = np.where(tl.target_mask[s] > 0, tl.targets[s], np.nan)
        pred[ok, h] = vals
    return pred


def _fit_holt(y: np.ndarray) -> tuple[float, float, float, float, float] | None:
    """(alpha, beta, phi, l0, b0) of statsmodels' additive damped-trend Holt fit, or None."""
    from statsmodels.tsa.holtwinters import ExponentialSmoothing

    if y.size < 10:
        return None
    if np.ptp(y) < 1e-12:
        return (1.0, 0.0, 1.0, float(y[0]), 0.0)  # constant series: persistence is exact
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = ExponentialSmoothing(
                y, trend="add", damped_trend=True, seasonal=None, initialization_method="estimated"
            ).fit()
        p = res.params
        out = (
            float(p["smoothing_level"]),
            float(p["smoothing_trend"]),
            float(p["damping_trend"]),
            float(p["initial_level"]),
            float(p["initial_trend"]),
        )
    except Exception:
        return None
    return out if all(np.isfinite(out)) else None


def ets(
    tl: Timeline,
    train_mask,
    test_mask,
    horizon: int,
    max_fit_points: int = 2000,
) -> np.ndarray:
    """Holt's additive damped trend (statsmodels ``ExponentialSmoothing(trend="add",
    damped_trend=True)``), fitted per (node, target) on the training range, then rolled forward
    WITHOUT refitting.

    Series: per (node, target), on the window grid from the first training window to the last
    window of the timeline; a grid window without a defined value (missing window, masked step,
    ``target_mask`` 0) takes the previous value (forward fill). Fit: on the training windows'
    values only (test values masked before the fill), the last ``max_fit_points`` grid steps of
    the training range; a series with under 10 points or a failed fit falls back to persistence
    (α = 1, β = 0), a constant one too (it is exact). Then the fitted recursion runs over the
    whole grid from the fit's start (so the state at a test origin has seen every value before
    it, train and test), with y_t the forward-filled value:

        l_t = α·y_t + (1 − α)·(l_{t−1} + φ·b_{t−1})
        b_t = β·(l_t − l_{t−1}) + (1 − β)·φ·b_{t−1}
        ŷ_{t+h|t} = l_t + (φ + φ² + … + φ^h)·b_t

    (statsmodels' parametrisation; l_0, b_0 its fitted initial states). No seasonal component:
    the datasets at hand span under two days (a day-long season needs ≥ 2 seasons of history;
    seasonal Holt-Winters is not implemented — a known gap).
    """
    w_n, n, m = tl.targets.shape
    pred = np.full((w_n, horizon, n, m), np.nan, dtype=np.float32)
    train = np.asarray(train_mask, dtype=bool)
    org = forecast_origins(tl, test_mask)
    if not train.any() or not org.any():
        return pred
    g = (tl.window_start_ms - tl.window_start_ms[np.flatnonzero(train)[0]]) // tl.window_ms
    sel = g >= 0
    gl = int(g[sel].max()) + 1
    y_all = np.full((gl, n * m), np.nan)
    y_tr = np.full((gl, n * m), np.nan)
    vals = np.where(tl.target_mask > 0, tl.targets, np.nan).reshape(w_n, n * m)
    y_all[g[sel]] = vals[sel]
    y_tr[g[train]] = vals[train]
    g_train_end = int(g[train].max())
    y_tr = _ffill(y_tr[: g_train_end + 1])
    y_all = _ffill(y_all)

    k = n * m
    alpha, beta, phi = np.ones(k), np.zeros(k), np.ones(k)
    l0, b0 = np.full(k, np.nan), np.zeros(k)
    start = np.full(k, gl, dtype=np.int64)
    for i in range(k):
        col = y_tr[:, i]
        first = np.flatnonzero(~np.isnan(col))
        if first.size == 0:
            continue
        s0 = max(int(first[0]), g_train_end + 1 - max_fit_points)
        params = _fit_holt(col[s0:])
        if params is None:
            params = (1.0, 0.0, 1.0, float(col[s0]), 0.0)
        alpha[i], beta[i], phi[i], l0[i], b0[i] = params
        start[i] = s0
    # cumulative damping factors (φ + … + φ^h) per series, [H, k]
    phi_h = np.cumsum(phi[None, :] ** np.arange(1, horizon + 1)[:, None], axis=0)
    origin_g = {int(g[wi]): int(wi) for wi in np.flatnonzero(org & sel)}
    lvl, trd = np.full(k, np.nan), np.zeros(k)
    for t in range(int(start.min()) if (start < gl).any() else gl, gl):
        new = start == t
        lvl[new], trd[new] = l0[new], b0[new]
        yt = y_all[t]
        upd = (start <= t) & ~np.isnan(yt) & ~np.isnan(lvl)
        if upd.any():
            lp, bp = lvl[upd], trd[upd]
            a, bt, ph = alpha[upd], beta[upd], phi[upd]
            ln = a * yt[upd] + (1 - a) * (lp + ph * bp)
            trd[upd] = bt * (ln - lp) + (1 - bt) * ph * bp
            lvl[upd] = ln
        wi = origin_g.get(t)
        if wi is not None:
            fc = lvl[None, :] + phi_h * trd[None, :]
            pred[wi] = fc.reshape(horizon, n, m)
    return pred


def forecast_metrics(
    pred: np.ndarray,
    tl: Timeline,
    horizon: int,
    origins_mask: np.ndarray,
    nodes: np.ndarray | None = None,
    exclude: np.ndarray | None = None,
) -> dict[str, dict[int, dict[str, Any]]]:
    """Errors of ``pred [W, H, N, M]`` against the targets, per target name and horizon h.

    Cells: origin w in ``origins_mask``, node in ``nodes`` [N] bool (default all), grid window
    w + h held by the timeline, ``target_mask`` 1 there, and a finite prediction; with
    ``exclude`` [W] bool (e.g. the windows of labelled faults), neither w nor w + h may be one of
    its windows. With y the truth and ŷ the forecast (original scale):

    * MAE = mean |ŷ − y|;  RMSE = √mean (ŷ − y)²;
    * R² = 1 − Σ(ŷ − y)² / Σ(y − ȳ)² (ȳ over the same cells; NaN when the truth is constant);
    * sMAPE (%) = 100 · mean 2|ŷ − y| / (|ŷ| + |y|), a 0/0 term counting 0;
    * ``count`` (cells scored), ``not_forecast`` (cells with a defined truth but a NaN forecast:
      compare baselines on equal ``count`` only).

    Returns ``{target: {h: {...}}}`` with h = 1..H.
    """
    w_n, _, n, m = pred.shape
    org = np.asarray(origins_mask, dtype=bool)
    nsel = np.ones(n, dtype=bool) if nodes is None else np.asarray(nodes, dtype=bool)
    idx = tl.grid_offset(np.arange(1, horizon + 1))  # [W, H]
    out: dict[str, dict[int, dict[str, Any]]] = {}
    for j, name in enumerate(tl.target_names):
        out[name] = {}
        for h in range(horizon):
            ok_w = org & (idx[:, h] >= 0)
            if exclude is not None:
                out_w = np.asarray(exclude, dtype=bool)
                ok_w &= ~out_w & ~out_w[np.maximum(idx[:, h], 0)]
            src = idx[ok_w, h]
            y = tl.targets[src][:, nsel, j].astype(np.float64)
            defined = tl.target_mask[src][:, nsel, j] > 0
            p = pred[ok_w, h][:, nsel, j].astype(np.float64)
            cell = defined & np.isfinite(p)
            yv, pv = y[cell], p[cell]
            err = pv - yv
            res: dict[str, Any] = {
                "count": int(cell.sum()),
                "not_forecast": int((defined & ~np.isfinite(p)).sum()),
            }
            if yv.size:
                sst = float(((yv - yv.mean()) ** 2).sum())
                denom = np.abs(pv) + np.abs(yv)
                sm = np.where(denom > 0, 2 * np.abs(err) / np.where(denom > 0, denom, 1), 0.0)
                res.update(
                    mae=float(np.abs(err).mean()),
                    rmse=float(np.sqrt((err**2).mean())),
                    r2=float(1 - (err**2).sum() / sst) if sst > 0 else float("nan"),
                    smape=float(100 * sm.mean()),
                )
            else:
                res.update(mae=float("nan"), rmse=float("nan"), r2=float("nan"), smape=float("nan"))
            out[name][h + 1] = res
    return out


ForecastBaseline = Callable[..., np.ndarray]

FORECAST_BASELINES: dict[str, ForecastBaseline] = {
    "last_value": last_value,
    "seasonal_naive": seasonal_naive,
    "ets": ets,
}

__all__: list[Any] = [
    "FORECAST_BASELINES",
    "ets",
    "forecast_metrics",
    "forecast_origins",
    "last_value",
    "seasonal_naive",
]

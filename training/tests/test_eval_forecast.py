"""evaluate/forecast_baselines.py: metrics of a perfect forecast, persistence, Holt, seasonal."""

from __future__ import annotations

import numpy as np
import pytest
from test_timeline import NODE_FEATURES, WMS, F, M, make_timeline

from meshwatch_training.evaluate.forecast_baselines import (
    FORECAST_BASELINES,
    ets,
    forecast_metrics,
    forecast_origins,
    last_value,
    seasonal_naive,
)

H = 3


def _series_tl(y: np.ndarray, window_start_ms: np.ndarray | None = None):
    """One node, target request_rate = y (all targets = y), windows with spans."""
    w = y.shape[0]
    x = np.zeros((w, 1, F), np.float32)
    x[:, 0, NODE_FEATURES.index("requests_per_s")] = 1.0
    tg = np.repeat(y.astype(np.float32)[:, None, None], M, axis=2)
    return make_timeline(x, targets=tg, window_start_ms=window_start_ms)


def _exact_forecasts(tl) -> tuple[np.ndarray, np.ndarray]:
    """(origins: windows 30..44 of 50, pred [50, H, 1, M]: the truth H windows ahead of each)."""
    org = np.zeros(50, bool)
    org[30:45] = True
    pred = np.full((50, H, 1, M), np.nan, np.float32)
    for w in np.flatnonzero(org):
        pred[w, :, 0] = tl.targets[w + 1 : w + 1 + H, 0]
    return org, pred


def test_perfect_forecast_metrics() -> None:
    rng = np.random.default_rng(0)
    tl = _series_tl(rng.normal(10, 2, 50))
    org, pred = _exact_forecasts(tl)
    m = forecast_metrics(pred, tl, H, org)
    r = m["request_rate"][2]
    assert r["count"] == 15 and r["mae"] == 0 and r["rmse"] == 0 and r["r2"] == 1.0
    assert r["smape"] == 0
    # an error of +1 everywhere at h = 1
    pred[org, 0] += 1
    r1 = forecast_metrics(pred, tl, H, org)["request_rate"][1]
    y = tl.targets[31:46, 0, 0].astype(np.float64)
    assert r1["mae"] == pytest.approx(1.0) and r1["rmse"] == pytest.approx(1.0)
    assert r1["r2"] == pytest.approx(1 - 15 / ((y - y.mean()) ** 2).sum())
    assert r1["smape"] == pytest.approx(100 * np.mean(2 / (np.abs(y + 1) + np.abs(y))), rel=1e-5)
    # origins at the end: h beyond the timeline is not scored
    org2 = np.zeros(50, bool)
    org2[49] = True
    assert forecast_metrics(pred, tl, H, org2)["request_rate"][1]["count"] == 0


def test_metrics_leave_out_cells_that_start_or_end_in_excluded_windows() -> None:
    tl = _series_tl(np.arange(50, dtype=np.float64))
    org, pred = _exact_forecasts(tl)
    pred[36, 0, 0] += 100.0  # a bad forecast of window 37 from origin 36
    fault = np.zeros(50, bool)
    fault[37:40] = True  # windows 37..39 inside a fault
    every = forecast_metrics(pred, tl, H, org)["request_rate"][1]
    clean = forecast_metrics(pred, tl, H, org, exclude=fault)["request_rate"][1]
    assert every["count"] == 15 and every["mae"] == pytest.approx(100 / 15)
    # h = 1: origins 37, 38, 39 start in the fault, origins 36, 37, 38 end in it -> 36..39 out
    assert clean["count"] == 11 and clean["mae"] == 0
    # h = 3: origins 34..39 reach or start in 37..39
    assert forecast_metrics(pred, tl, H, org, exclude=fault)["request_rate"][3]["count"] == 9


def test_benchmark_scores_every_method_on_the_same_cells() -> None:
    from meshwatch_training.benchmark import score_forecasts

    tl = _series_tl(np.arange(50, dtype=np.float64))
    org, exact = _exact_forecasts(tl)
    learned = exact.copy()
    learned[40:45] = np.nan  # a learned forecaster leaves some origins out
    persistence = exact + 1.0  # off by one everywhere it forecasts
    persistence[30:35] = np.nan
    season = np.full_like(exact, np.nan)  # no season in the data: forecasts nothing
    fault = np.zeros(50, bool)
    fault[37] = True
    preds = {"learned": learned, "last_value": persistence, "seasonal_naive": season}
    s = score_forecasts(preds, tl, H, org, fault)
    for key in ("metrics", "metrics_fault_free"):
        counts = {m: s[m][key]["request_rate"][1]["count"] for m in ("learned", "last_value")}
        assert counts["learned"] == counts["last_value"], (key, counts)
    # origins 35..39 are the ones both forecast
    assert s["learned"]["metrics"]["request_rate"][1]["count"] == 5
    assert s["last_value"]["metrics"]["request_rate"][1]["mae"] == pytest.approx(1.0)
    # h = 1 outside the fault window 37: origins 35, 38 and 39 (36 forecasts 37)
    assert s["learned"]["metrics_fault_free"]["request_rate"][1]["count"] == 3
    assert s["seasonal_naive"]["metrics"]["request_rate"][1]["count"] == 0
    assert score_forecasts(preds, tl, H, org, None)["learned"].keys() == {"metrics"}


def test_last_value_constant_and_masked() -> None:
    y = np.full(40, 7.0)
    tl = _series_tl(y)
    tl.target_mask[35, 0, 0] = 0  # undefined at an origin: the previous value is used
    tl.targets[35, 0, 0] = 0
    test = np.arange(40) >= 30
    pred = last_value(tl, ~test, test, H)
    assert np.isnan(pred[:30]).all()
    assert (pred[30:, :, 0, 0] == 7.0).all()
    m = forecast_metrics(pred, tl, H, forecast_origins(tl, test))
    assert m["request_rate"][1]["mae"] == 0 and m["request_rate"][1]["count"] == 8  # 31..39 − 35


def test_ets_linear_and_constant() -> None:
    w = 200
    y = 3.0 + 0.5 * np.arange(w)
    tl = _series_tl(y)
    test = np.arange(w) >= 150
    pred = ets(tl, ~test, test, H)
    org = forecast_origins(tl, test)
    m = forecast_metrics(pred, tl, H, org)["request_rate"]
    assert m[1]["count"] == 49
    assert m[1]["mae"] < 0.05 and m[3]["mae"] < 0.2  # a damped trend follows a line closely
    lv = forecast_metrics(last_value(tl, ~test, test, H), tl, H, org)["request_rate"]
    assert m[3]["mae"] < lv[3]["mae"] / 5  # persistence lags by 0.5·h
    c = _series_tl(np.full(60, 4.0))
    t2 = np.arange(60) >= 40
    pc = ets(c, ~t2, t2, H)
    assert np.allclose(pc[40:], 4.0) and np.isnan(pc[:40]).all()


def test_ets_rolls_over_gaps_without_refit() -> None:
    # a gap in the grid (windows 100..109 kept out): the state forward-fills across it
    ws = 1_700_000_000_000 + WMS * np.concatenate([np.arange(100), np.arange(110, 160)])
    y = np.full(150, 2.0)
    y[100:] = 6.0  # a level shift after the gap, in the test range
    tl = _series_tl(y, window_start_ms=ws)
    test = np.arange(150) >= 100
    pred = ets(tl, ~test, test, H)
    assert np.isfinite(pred[100:]).all()
    assert abs(pred[-1, 0, 0, 0] - 6.0) < abs(pred[100, 0, 0, 0] - 6.0) + 1e-6


def test_seasonal_naive() -> None:
    season = 10  # windows
    y = np.tile(np.arange(season, dtype=np.float64), 5)
    tl = _series_tl(y)
    test = np.arange(50) >= 30
    pred = seasonal_naive(tl, ~test, test, H, season_ms=season * WMS)
    m = forecast_metrics(pred, tl, H, forecast_origins(tl, test))
    assert m["request_rate"][2]["mae"] == 0 and m["request_rate"][2]["count"] == 18
    # one day of 10 s windows: no window one season back → not applicable (NaN)
    assert np.isnan(seasonal_naive(tl, ~test, test, H)).all()


def test_registry() -> None:
    assert set(FORECAST_BASELINES) == {"last_value", "seasonal_naive", "ets"}

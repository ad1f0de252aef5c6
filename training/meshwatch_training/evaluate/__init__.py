"""Evaluation of detectors and forecasters: metrics, baselines and root-cause rankings.

* :mod:`.metrics` — node-window AUROC/AUPRC/F1/PA-F1, event detection, alarm thresholds;
* :mod:`.rootcause` — AC@k / Avg@5 of score and personalised-PageRank rankings;
* :mod:`.baselines` — anomaly baselines (robust z-scores, Isolation Forest, autoencoders);
* :mod:`.forecast_baselines` — forecasting baselines (persistence, seasonal naive, Holt) and
  forecast errors.

All work on a :class:`~meshwatch_training.timeline.Timeline` (one graph's dataset as one aligned
window grid).
"""

from __future__ import annotations

from .baselines import ANOMALY_BASELINES
from .forecast_baselines import FORECAST_BASELINES, forecast_metrics, forecast_origins
from .metrics import (
    event_metrics,
    events_from_timeline,
    load_events,
    node_window_metrics,
    threshold_from_train,
)
from .rootcause import root_cause_metrics

__all__ = [
    "ANOMALY_BASELINES",
    "FORECAST_BASELINES",
    "event_metrics",
    "events_from_timeline",
    "forecast_metrics",
    "forecast_origins",
    "load_events",
    "node_window_metrics",
    "root_cause_metrics",
    "threshold_from_train",
]

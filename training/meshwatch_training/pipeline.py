"""Train one model from a config and, with ``export.out``, export it with its model card."""

from __future__ import annotations

import json
import pathlib
from collections.abc import Callable
from typing import Any

from .config import Config
from .data import Dataset
from .export import export_model
from .modelcard import write_model_card
from .train import load_samples, train


def dataset_summary(dataset: Dataset) -> dict[str, Any]:
    m = dataset.manifest
    return {
        "path": str(dataset.root),
        "producer": m.get("producer"),
        "window_ms": m.get("window_ms"),
        "inputs": m.get("inputs"),
        "totals": m.get("totals"),
        "graphs": [
            {
                "graph": g["graph"],
                "windows_observed": g.get("windows_observed"),
                "faults": g.get("faults"),
            }
            for g in m.get("graphs", [])
        ],
    }


def train_and_export(
    cfg: Config,
    dataset: Dataset,
    log: Callable[[str], None] = print,
    metrics: dict[str, Any] | None = None,
    samples: list | None = None,
) -> dict[str, Any]:
    """Train ``cfg.model.kind`` on ``cfg.data``; export to ``cfg.export.out`` when set."""
    t = cfg.data.steps
    length = t + (cfg.model.horizon if cfg.model.kind == "forecaster" else 0)
    if length > dataset.steps:
        raise ValueError(
            f"the {cfg.model.kind} needs sequences of {length} windows but {dataset.root} was "
            f"built with --steps {dataset.steps}"
        )
    if samples is None:
        samples = load_samples(
            dataset, length, cfg.data.train_range, cfg.data.drop_traceless, cfg.data.graphs, t - 1
        ).samples
    log(f"{cfg.model.kind}: {len(samples)} training samples of {length} windows")

    def progress(row: dict[str, float]) -> None:
        log(" ".join(f"{k}={v:.4g}" for k, v in row.items()))

    result = train(cfg, dataset, samples, progress=progress)
    summary: dict[str, Any] = {
        "kind": cfg.model.kind,
        "samples_train": result.samples_train,
        "samples_validation": result.samples_validation,
        "seconds": round(result.seconds, 1),
        "device": result.device,
        "final": result.history[-1] if result.history else {},
    }
    if cfg.export.out:
        training = {
            "dataset": dataset_summary(dataset),
            "source": cfg.data.source or str(dataset.root),
            "train_range": cfg.data.train_range,
            "drop_traceless": cfg.data.drop_traceless,
            **summary,
            "history": result.history,
        }
        info = export_model(
            result.model,
            cfg.model.kind,
            cfg.export.out,
            feature_names=dataset.node_feature_names,
            edge_feature_names=dataset.edge_feature_names,
            target_names=dataset.target_names,
            feature_schema_version=dataset.feature_schema_version,
            steps=t,
            window_ms=int(dataset.manifest["window_ms"]),
            horizon=cfg.model.horizon if cfg.model.kind == "forecaster" else None,
            real_samples=samples[-2:],
            opset=cfg.export.opset,
            atol=cfg.export.atol,
            rtol=cfg.export.rtol,
            random_cases=cfg.export.parity_cases,
            variants=cfg.export.variants,
            training=training,
            metrics=metrics,
            config=cfg.to_dict(),
        )
        write_model_card(pathlib.Path(cfg.export.out), info.manifest)
        summary["export"] = str(info.directory)
        summary["parity_max_abs_error"] = info.manifest["parity"]["max_abs_error_onnxruntime"]
        summary["variants"] = [
            {k: v.get(k) for k in ("name", "shipped", "size_ratio", "latency_ms")}
            for v in info.manifest["variants"]
        ]
        log(f"exported to {info.directory}: {json.dumps(summary['variants'])}")
    return summary

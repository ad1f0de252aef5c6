"""Training configuration: a TOML file (``train --config``) over these defaults.

Every section and key is checked: an unknown key is an error that names it (a typo must not train a
different model silently). ``--set section.key=value`` overrides single values from the command
line (the value is parsed as TOML, so ``--set train.epochs=3`` is an integer).
"""

from __future__ import annotations

import copy
import pathlib
import tomllib
from dataclasses import asdict, dataclass, field, fields
from typing import Any


class ConfigError(ValueError):
    """The configuration is invalid; the message names the file and key."""


@dataclass
class DataConfig:
    dataset: str = ""  # a directory written by `meshwatch dataset build`
    source: str = ""  # what the dataset was made from, for the manifest and model card
    steps: int = 12  # T: windows the model sees (the detector scores the last one)
    train_range: str = "0%..100%"  # windows (by their start) used for training: see ranges.py
    drop_traceless: bool = False  # windows with metrics but no spans are masked (cut traces)
    graphs: list[str] = field(default_factory=list)  # restrict to these graphs (empty: all)


@dataclass
class ModelConfig:
    kind: str = "detector"  # detector | forecaster
    dim: int = 32
    hops: int = 2
    heads: int = 4  # detector
    layers: int = 2  # detector: Transformer layers
    dropout: float = 0.1
    horizon: int = 5  # forecaster: H
    learned_frequencies: int = 8  # forecaster
    robust_norm: bool = False  # forecaster: median and MAD of the input windows, not mean and σ
    use_graph: bool = True  # ablations
    use_temporal: bool = True
    use_fusion: bool = True  # detector
    use_edge_features: bool = True  # detector
    conditional: bool = True  # detector: a history-free path (load + callees -> performance)
    current_callers: bool = False  # detector: the current window's context includes callers
    # detector: the deviations the score reads: "both" paths, the history-free ("conditional")
    # one alone, or "max" of a head over each, calibrated (docs/models.md, "Which deviations
    # the score reads")
    score_from: str = "both"


@dataclass
class TrainConfig:
    seed: int = 7
    epochs: int = 30
    batch_size: int = 16  # samples (graphs of T windows) per step, batched as a disjoint union
    lr: float = 2e-3
    weight_decay: float = 1e-4
    grad_clip: float = 1.0
    device: str = "auto"  # auto (CUDA when present) | cpu | cuda | cuda:N
    max_minutes: float = 20.0  # stop after this many minutes of training (the epoch ends first)
    validation_fraction: float = 0.1  # the latest samples of the training range, for the loss log
    inject_rate: float = 0.1  # detector: share of present nodes perturbed per sample
    score_weight: float = 1.0  # detector: weight of the score head's loss
    # detector: unperturbed nodes whose deviation is above this quantile of the batch's are left
    # out of the score head's loss (likely real faults in unlabelled training data); 0: none
    trim_negatives: float = 0.0
    max_samples: int = 0  # 0: all; else a seeded subset (tests, quick runs)


@dataclass
class ExportConfig:
    out: str = ""  # model directory (models/detector); empty: no export
    opset: int = 17
    atol: float = 1e-4
    rtol: float = 1e-3
    parity_cases: int = 3  # random cases; plus up to 2 real samples of the dataset
    variants: list[str] = field(default_factory=lambda: ["int8"])  # int8 (or none: [])


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    export: ExportConfig = field(default_factory=ExportConfig)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _apply(cfg: Config, raw: dict[str, Any], where: str) -> None:
    errors = []
    for section, values in raw.items():
        if section not in {f.name for f in fields(Config)}:
            errors.append(f"{where}: unknown section [{section}]")
            continue
        if not isinstance(values, dict):
            errors.append(f"{where}: [{section}] must be a table")
            continue
        target = getattr(cfg, section)
        known = {f.name: f for f in fields(target)}
        for key, value in values.items():
            if key not in known:
                errors.append(f"{where}: unknown key {section}.{key}")
                continue
            current = getattr(target, key)
            ok = (
                isinstance(value, type(current))
                or (isinstance(current, float) and isinstance(value, int))
            ) and not (isinstance(value, bool) and not isinstance(current, bool))
            if not ok:
                errors.append(
                    f"{where}: {section}.{key} = {value!r} is not a {type(current).__name__}"
                )
                continue
            setattr(target, key, float(value) if isinstance(current, float) else value)
    if errors:
        raise ConfigError("\n".join(errors))


def load_config(path: str | pathlib.Path | None, overrides: list[str] | None = None) -> Config:
    """Defaults < TOML file < ``section.key=value`` overrides; then validated."""
    cfg = Config()
    if path is not None:
        p = pathlib.Path(path)
        try:
            raw = tomllib.loads(p.read_text())
        except OSError as e:
            raise ConfigError(f"{p}: {e.strerror}") from e
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"{p}: invalid TOML: {e}") from e
        _apply(cfg, raw, str(p))
    for item in overrides or []:
        key, sep, value = item.partition("=")
        section, dot, name = key.partition(".")
        if not sep or not dot:
            raise ConfigError(f"--set {item!r}: expected section.key=value")
        try:
            parsed = tomllib.loads(f"v = {value}")["v"]
        except tomllib.TOMLDecodeError:
            parsed = value  # a bare string
        _apply(cfg, {section: {name: parsed}}, f"--set {item}")
    validate(cfg)
    return cfg


def validate(cfg: Config) -> None:
    errors = []
    if cfg.model.kind not in ("detector", "forecaster"):
        errors.append(f"model.kind {cfg.model.kind!r} is not 'detector' or 'forecaster'")
    if cfg.data.steps < 2:
        errors.append(f"data.steps {cfg.data.steps} < 2 (the model needs history)")
    if cfg.model.dim < 2 or cfg.model.dim % 2:
        errors.append(f"model.dim {cfg.model.dim} must be an even number ≥ 2")
    if cfg.model.kind == "detector" and cfg.model.dim % cfg.model.heads:
        errors.append(f"model.dim {cfg.model.dim} is not divisible by model.heads")
    if cfg.model.score_from not in ("both", "conditional", "max"):
        errors.append(
            f"model.score_from {cfg.model.score_from!r} is not 'both', 'conditional' or 'max'"
        )
    elif cfg.model.score_from != "both" and not cfg.model.conditional:
        errors.append(f"model.score_from = {cfg.model.score_from!r} needs model.conditional = true")
    if cfg.model.horizon < 1:
        errors.append("model.horizon must be ≥ 1")
    if cfg.train.epochs < 1 or cfg.train.batch_size < 1:
        errors.append("train.epochs and train.batch_size must be ≥ 1")
    if not 0.0 <= cfg.train.inject_rate < 1.0:
        errors.append("train.inject_rate must be in [0, 1)")
    if not 0.0 <= cfg.train.trim_negatives < 1.0:
        errors.append("train.trim_negatives must be in [0, 1)")
    if not 0.0 <= cfg.train.validation_fraction < 1.0:
        errors.append("train.validation_fraction must be in [0, 1)")
    for v in cfg.export.variants:
        if v != "int8":
            errors.append(f"export.variants: {v!r} is not 'int8' (the one variant offered)")
    if errors:
        raise ConfigError("\n".join(errors))


def copy_config(cfg: Config) -> Config:
    return copy.deepcopy(cfg)

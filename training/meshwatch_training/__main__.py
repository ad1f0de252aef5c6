"""Command line: ``python -m meshwatch_training train|benchmark|latency|reexport ...``
(docs/models.md, docs/benchmarks.md)."""

from __future__ import annotations

import argparse
import json
import logging
import sys

from .config import ConfigError, load_config


def _train(args: argparse.Namespace) -> int:
    from .data import Dataset, DatasetError
    from .pipeline import train_and_export

    overrides = list(args.set or [])
    if args.dataset:
        overrides.append(f'data.dataset="{args.dataset}"')
    if args.out:
        overrides.append(f'export.out="{args.out}"')
    if args.device:
        overrides.append(f'train.device="{args.device}"')
    try:
        cfg = load_config(args.config, overrides)
    except ConfigError as e:
        print(f"meshwatch-training: {e}", file=sys.stderr)
        return 2
    if not cfg.data.dataset:
        print("meshwatch-training: no dataset (data.dataset or --dataset)", file=sys.stderr)
        return 2
    try:
        dataset = Dataset(cfg.data.dataset)
    except (DatasetError, OSError) as e:
        print(f"meshwatch-training: {e}", file=sys.stderr)
        return 2
    summary = train_and_export(cfg, dataset, log=lambda m: print(m, file=sys.stderr))
    print(json.dumps(summary, indent=2))
    return 0


def _benchmark(args: argparse.Namespace) -> int:
    from .benchmark import BenchmarkError, run_benchmark

    try:
        report = run_benchmark(args, log=lambda m: print(m, file=sys.stderr))
    except BenchmarkError as e:
        print(f"meshwatch-training: {e}", file=sys.stderr)
        return 2
    print(json.dumps(report["summary"], indent=2))
    return 0


def _latency(args: argparse.Namespace) -> int:
    from .latency import LatencyError, run_latency

    try:
        report = run_latency(args)
    except LatencyError as e:
        print(f"meshwatch-training: {e}", file=sys.stderr)
        return 2
    print(json.dumps(report))
    return 0


def _reexport(args: argparse.Namespace) -> int:
    from .latency import LatencyError
    from .reexport import ReexportError, run_reexport

    try:
        report = run_reexport(args)
    except (ReexportError, LatencyError) as e:
        print(f"meshwatch-training: {e}", file=sys.stderr)
        return 2
    print(json.dumps(report, indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    p = argparse.ArgumentParser(prog="python -m meshwatch_training")
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train one model and export it (ONNX + manifest + parity)")
    t.add_argument("--config", help="TOML config (training/configs/*.toml)")
    t.add_argument("--dataset", help="dataset directory (overrides data.dataset)")
    t.add_argument("--out", help="model directory to write (overrides export.out)")
    t.add_argument("--device", help="auto | cpu | cuda | cuda:N (overrides train.device)")
    t.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE", help="override a value")
    t.set_defaults(func=_train)
    b = sub.add_parser("benchmark", help="evaluate the models and the baselines on labelled faults")
    from .benchmark import add_arguments

    add_arguments(b)
    b.set_defaults(func=_benchmark)
    la = sub.add_parser(
        "latency", help="PyTorch eager latency of a model artifact on given inputs (one JSON line)"
    )
    from .latency import add_arguments as add_latency_arguments

    add_latency_arguments(la)
    la.set_defaults(func=_latency)
    r = sub.add_parser(
        "reexport", help="export an artifact again with the current code and the same weights"
    )
    from .reexport import add_arguments as add_reexport_arguments

    add_reexport_arguments(r)
    r.set_defaults(func=_reexport)
    args = p.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())

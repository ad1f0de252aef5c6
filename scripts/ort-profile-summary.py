#!/usr/bin/env python3
"""Summarises an ONNX Runtime profile (`meshwatch bench inference --ort-profile PREFIX`).

Usage: scripts/ort-profile-summary.py PROFILE.json [--top K] [--nodes N]

Prints the runs' wall time (`model_run` events), the kernel time per run by execution provider
and by operator type, and the K nodes that took the longest. The warm-up and parity runs are in
the profile too, so profile one graph size per file. Standard library only. With the CUDA
execution provider a node's time is what the host spent on it (a kernel launch returns before
the kernel ends), so a slow GPU kernel shows up in the node that waits for it.
"""

from __future__ import annotations

import argparse
import collections
import json
import statistics
import sys


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("profile")
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args()
    try:
        with open(args.profile, encoding="utf-8") as f:
            events = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        print(f"{args.profile}: {e}", file=sys.stderr)
        return 1
    runs = [e["dur"] for e in events if e.get("cat") == "Session" and e.get("name") == "model_run"]
    by_provider: collections.Counter[str] = collections.Counter()
    by_op: collections.Counter[tuple[str, str]] = collections.Counter()
    by_node: collections.Counter[tuple[str, str, str]] = collections.Counter()
    for e in events:
        if e.get("cat") != "Node" or not str(e.get("name", "")).endswith("_kernel_time"):
            continue
        a = e.get("args", {})
        provider = str(a.get("provider", "?")).replace("ExecutionProvider", "")
        op = str(a.get("op_name", "?"))
        node = str(e["name"])[: -len("_kernel_time")]
        dur = float(e.get("dur", 0))
        by_provider[provider] += dur
        by_op[(provider, op)] += dur
        by_node[(provider, op, node)] += dur
    n = max(len(runs), 1)
    if runs:
        print(
            f"model_run: {len(runs)} runs, median {statistics.median(runs) / 1000:.3f} ms, "
            f"mean {statistics.fmean(runs) / 1000:.3f} ms"
        )
    print("\nkernel time per run, by execution provider (µs):")
    for provider, t in by_provider.most_common():
        print(f"  {provider:>8} {t / n:10.1f}")
    print(f"\nby provider and operator, top {args.top} (µs per run):")
    for (provider, op), t in by_op.most_common(args.top):
        print(f"  {provider:>8} {op:<24} {t / n:10.1f}")
    print(f"\nnodes, top {args.top} (µs per run):")
    for (provider, op, node), t in by_node.most_common(args.top):
        print(f"  {provider:>8} {op:<20} {t / n:10.1f}  {node}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

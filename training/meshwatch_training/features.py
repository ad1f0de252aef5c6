"""Roles of the node features in the detector's deviation, derived from the feature NAMES.

The feature values come from Rust (ARCHITECTURE.md §4); this module only decides which deviations
count. "Absent is not zero" (docs/dataset-format.md): a latency of a node without requests, a gap
without paired calls or a resource metric that did not arrive is written as 0 with a presence
signal elsewhere, so its deviation from a prediction means nothing. For feature f:

- ``kind_*`` one-hots and ``*_present`` flags: not scored (they describe, they do not deviate);
- ``X`` with a ``X_present`` flag: scored where that flag is 1;
- ``in_gap_*``: scored where ``in_gap_present`` is 1;
- ``error_ratio`` and ``latency_*``: scored where ``requests_per_s`` > 0;
- ``out_*`` other than ``out_calls_per_s``: scored where ``out_calls_per_s`` > 0;
- everything else (``requests_per_s``, ``out_calls_per_s``): always scored for a present node.
"""

from __future__ import annotations

from collections.abc import Sequence

ALWAYS = -1
NEVER = -2


def feature_gates(names: Sequence[str]) -> list[int]:
    """Per feature: the index of the feature that gates it (> 0 means scored), ALWAYS or NEVER."""
    index = {n: i for i, n in enumerate(names)}
    gates: list[int] = []
    for name in names:
        if name.startswith("kind_") or name.endswith("_present"):
            gates.append(NEVER)
        elif f"{name}_present" in index:
            gates.append(index[f"{name}_present"])
        elif name.startswith("in_gap_") and "in_gap_present" in index:
            gates.append(index["in_gap_present"])
        elif (name == "error_ratio" or name.startswith("latency_")) and "requests_per_s" in index:
            gates.append(index["requests_per_s"])
        elif name.startswith("out_") and name != "out_calls_per_s" and "out_calls_per_s" in index:
            gates.append(index["out_calls_per_s"])
        else:
            gates.append(ALWAYS)
    return gates

"""Time ranges ``A..B`` of the training and benchmark commands.

A bound is a percentage of a graph's time span (``30%``: 30 % of the way from its first to its last
window start), an RFC 3339 time (``2022-08-22T05:00:00Z``) or Unix seconds (``1661144400``); an
empty bound is open. A window belongs to the range when its start s satisfies A ≤ s < B (the upper
bound is exclusive so that ``0%..70%`` and ``70%..100%`` split a graph without overlap; ``100%``
as an upper bound includes the last window).
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

import numpy as np


class RangeError(ValueError):
    """A range does not parse; the message names it."""


@dataclass(frozen=True)
class Bound:
    percent: float | None = None
    seconds: float | None = None

    def resolve(self, first: int, last: int) -> float:
        if self.percent is not None:
            return first + (last - first) * self.percent / 100.0
        assert self.seconds is not None
        return self.seconds


@dataclass(frozen=True)
class TimeRange:
    text: str
    lower: Bound | None
    upper: Bound | None

    def mask(self, window_start_s: np.ndarray, first: int | None = None, last: int | None = None):
        """bool [W]: windows of ``window_start_s`` inside the range (span: first..last)."""
        ws = np.asarray(window_start_s, dtype=np.int64)
        if ws.size == 0:
            return np.zeros(0, dtype=bool)
        first = int(ws.min()) if first is None else first
        last = int(ws.max()) if last is None else last
        out = np.ones(ws.shape, dtype=bool)
        if self.lower is not None:
            out &= ws >= self.lower.resolve(first, last)
        if self.upper is not None:
            hi = self.upper.resolve(first, last)
            if self.upper.percent is not None and self.upper.percent >= 100.0:
                out &= ws <= hi
            else:
                out &= ws < hi
        return out


def _bound(text: str, whole: str) -> Bound | None:
    text = text.strip()
    if not text:
        return None
    if text.endswith("%"):
        try:
            p = float(text[:-1])
        except ValueError as e:
            raise RangeError(f"range {whole!r}: {text!r} is not a percentage") from e
        if not 0.0 <= p <= 100.0:
            raise RangeError(f"range {whole!r}: {text} is outside 0%..100%")
        return Bound(percent=p)
    try:
        return Bound(seconds=float(int(text)))
    except ValueError:
        pass
    try:
        t = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as e:
        raise RangeError(
            f"range {whole!r}: {text!r} is neither a percentage, Unix seconds nor RFC 3339"
        ) from e
    if t.tzinfo is None:
        raise RangeError(f"range {whole!r}: {text!r} has no time zone (add Z or +00:00)")
    return Bound(seconds=t.timestamp())


def parse_range(text: str) -> TimeRange:
    lo, sep, hi = text.partition("..")
    if not sep:
        raise RangeError(f"range {text!r}: expected A..B (either side may be empty)")
    return TimeRange(text, _bound(lo, text), _bound(hi, text))

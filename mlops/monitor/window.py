"""Time windows: `--since 24h` and the buckets the report's plots are drawn over."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass
class Window:
    """The span of time a report covers: [start, end] (Unix seconds); start None = the whole log."""

    start: float | None
    end: float
    label: str

    def to_dict(self) -> dict[str, object]:
        return {"start": self.start, "end": self.end, "label": self.label}


def buckets(first: float, last: float, count: int = 24) -> tuple[list[float], float]:
    """Bucket edges (count + 1 of them) covering [first, last] on a round step, and the step."""
    span = max(last - first, 1.0)
    raw = span / count
    steps = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200]
    steps += [86400 * k for k in (1, 2, 7, 14, 30)]
    step = next((s for s in steps if s >= raw), steps[-1] * math.ceil(raw / steps[-1]))
    start = math.floor(first / step) * step
    n = max(1, math.ceil((last - start) / step + 1e-9))
    if start + n * step <= last:
        n += 1
    return [start + i * step for i in range(n + 1)], float(step)

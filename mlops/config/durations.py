"""Durations as pipeline.yaml and `--since` spell them: `90s`, `30m`, `24h`, `7d`, `2w`, `all`.

In `mlops.config` because pipeline.yaml's monitoring settings are checked against it;
`mlops.monitor.window` builds its time windows from it.
"""

from __future__ import annotations

import re

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
FORMS = "a number and a unit: 90s, 30m, 24h, 7d, 2w (or `all` for the whole log)"


def parse_duration(text: str) -> float | None:
    """Seconds in `30m`, `24h`, `7d`...; None for `all`. ValueError names the accepted forms."""
    if text.strip().lower() in ("all", "ever"):
        return None
    m = DURATION.match(text.lower())
    if not m or float(m.group(1)) <= 0:
        raise ValueError(f"{text!r} is not a duration: use {FORMS}")
    return float(m.group(1)) * UNITS[m.group(2)]


def describe_seconds(seconds: float) -> str:
    """`24h`, `7d`, `90m`: the largest unit that divides evenly (or one decimal)."""
    for unit in ("w", "d", "h", "m"):
        n = seconds / UNITS[unit]
        if n >= 1 and abs(n - round(n)) < 1e-9:
            return f"{round(n)}{unit}"
    return f"{seconds:.0f}s" if seconds < 120 else f"{seconds / 60:.1f}m"

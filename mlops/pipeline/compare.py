"""`mlops runs diff A B`: two runs' params and metrics side by side."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from mlops.pipeline.records import RunRecord


def flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts to `a.b.c` leaves (lists stay values)."""
    if not isinstance(data, dict):
        return {prefix: data} if prefix else {}
    out: dict[str, Any] = {}
    for k, v in data.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        if isinstance(v, dict) and v:
            out.update(flatten(v, key))
        else:
            out[key] = v
    return out


@dataclass
class DiffRow:
    key: str
    a: Any
    b: Any
    delta: float | None = None
    changed: bool = False


@dataclass
class RunDiff:
    a: str
    b: str
    params: list[DiffRow] = field(default_factory=list)
    metrics: list[DiffRow] = field(default_factory=list)
    summary: list[DiffRow] = field(default_factory=list)  # outcome, commit, kind, ...

    def to_dict(self) -> dict[str, Any]:
        return {
            "a": self.a,
            "b": self.b,
            "summary": [asdict(r) for r in self.summary],
            "params": [asdict(r) for r in self.params],
            "metrics": [asdict(r) for r in self.metrics],
        }


def _rows(a: dict[str, Any], b: dict[str, Any], numeric_delta: bool) -> list[DiffRow]:
    rows = []
    for key in list(a) + [k for k in b if k not in a]:
        va, vb = a.get(key), b.get(key)
        row = DiffRow(key, va, vb, changed=va != vb or (key in a) != (key in b))
        nums = (int, float)
        if (
            numeric_delta
            and isinstance(va, nums)
            and isinstance(vb, nums)
            and not isinstance(va, bool)
            and not isinstance(vb, bool)
        ):
            row.delta = round(vb - va, 6)
        rows.append(row)
    return rows


def diff_runs(a: RunRecord, b: RunRecord, all_params: bool = False) -> RunDiff:
    """Params (changed ones unless `all_params`) and every metric, with B - A for numbers."""
    params = _rows(flatten(a.params), flatten(b.params), numeric_delta=True)
    if not all_params:
        params = [r for r in params if r.changed]
    metrics = _rows(flatten(a.metrics), flatten(b.metrics), numeric_delta=True)
    summary = _rows(
        {
            "kind": a.kind,
            "outcome": a.outcome,
            "commit": (a.git_commit or "")[:10] + ("+dirty" if a.git_dirty else ""),
            "overrides": ", ".join(f"{k}={v}" for k, v in a.extra.get("overrides", {}).items()),
        },
        {
            "kind": b.kind,
            "outcome": b.outcome,
            "commit": (b.git_commit or "")[:10] + ("+dirty" if b.git_dirty else ""),
            "overrides": ", ".join(f"{k}={v}" for k, v in b.extra.get("overrides", {}).items()),
        },
        numeric_delta=False,
    )
    return RunDiff(a.id, b.id, params, metrics, summary)

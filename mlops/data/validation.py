"""Validate a table in one pass: schema checks, anomalies, the statistics profile, and drift.

`validate_table` is what the validate stage and `mlops validate` run. It reads the input in chunks
(bounded memory), feeds each chunk to the validation engine and the profiler from one parse and
sort per column, then checks anomalies against the previous span's profile and compares the
data with the previous span (N vs N-1) and, when given, a model's reference profile.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops.data.checks import Validator
from mlops.data.columns import ColumnChunk, summarize_frame
from mlops.data.drift import DriftReport, compare
from mlops.data.profile import Profiler
from mlops.data.roles import roles_in_schema
from mlops.data.schema import Failure
from mlops.data.stream import CHUNK_BYTES, Progress, iter_chunks

if TYPE_CHECKING:
    import pandas as pd

    from mlops.config.models import AnomalySpec, DriftSpec
    from mlops.errors import MlopsError


EXACT_ROWS = 10_000  # up to this many rows, drift tests read the rows, not the sketch


@dataclass
class ValidationReport:
    """Everything one validation found; `to_dict()` is the JSON report."""

    input: str
    schema: str | None
    rows: int
    columns: int
    failures: list[Failure]
    profile: dict[str, Any]
    previous: DriftReport | None = None  # this span against the previous one
    reference: DriftReport | None = None  # this data against a model's reference
    on_drift: str = "continue"
    chunks: int = 1
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        return not self.failures

    @property
    def drift(self) -> bool:
        """Dataset drift against the previous span or the reference."""
        return any(r is not None and r.dataset_drift for r in (self.previous, self.reference))

    @property
    def action(self) -> str:
        """What the settings say to do: `ok`, `continue`, `retrain` or `stop`."""
        if not self.valid:
            return "stop"
        if self.drift:
            return self.on_drift
        return "ok"

    def error(self) -> MlopsError | None:
        """The error this report amounts to: invalid data, or drift with `on_drift: stop`, is a
        `DataValidationError` (exit 3); drift with `on_drift: retrain` a `MonitorBreach`
        (exit 7); None otherwise (drift with `on_drift: continue` is reported only)."""
        from mlops.errors import DataValidationError, MonitorBreach

        if self.action == "stop":
            what = "invalid data" if not self.valid else "dataset drift (on_drift: stop)"
            return DataValidationError(
                f"{self.input}: {what}",
                "Fix the data or the schema; `mlops validate --html report.html` shows every "
                "problem and histogram.",
            )
        if self.action == "retrain":
            return MonitorBreach(
                f"{self.input}: dataset drift (on_drift: retrain)",
                "Retrain on the new data: `mlops run`.",
            )
        return None

    @property
    def exit_code(self) -> int:
        """The process exit code the report calls for (0 when it is no error)."""
        error = self.error()
        return 0 if error is None else int(error.exit_code)

    def failure_dicts(self) -> list[dict[str, Any]]:
        return [
            {
                "column": f.column,
                "check": f.check,
                "failing": f.count,
                "share": round(f.count / self.rows, 6) if self.rows else None,
                "examples": f.examples,
                "rows": f.rows,
            }
            for f in self.failures
        ]

    def to_dict(self, timing: bool = True) -> dict[str, Any]:
        """The report; without `timing` it is deterministic (the stage's DVC output: a report
        that changed with every run's duration would rerun everything downstream)."""
        out = {
            "valid": self.valid,
            "action": self.action,
            "input": self.input,
            "schema": self.schema,
            "rows": self.rows,
            "columns": self.columns,
            "chunks": self.chunks,
            "seconds": round(self.seconds, 4),
            "failures": self.failure_dicts(),
            "drift": {
                "on_drift": self.on_drift,
                "previous": self.previous.to_dict() if self.previous else None,
                "reference": self.reference.to_dict() if self.reference else None,
            },
            "notes": self.notes,
        }
        if not timing:
            del out["seconds"]
        return out


def anomalies(
    profile: dict[str, Any], previous: dict[str, Any] | None, spec: AnomalySpec | None
) -> list[Failure]:
    """Too few rows; against the previous span: a row-count jump, a missing/inf spike."""
    if spec is None:
        return []
    out: list[Failure] = []
    rows = int(profile.get("rows", 0))
    if rows < spec.min_rows:
        out.append(Failure("<table>", f"min_rows({spec.min_rows})", rows, [rows], []))
    if previous is None:
        return out
    before = int(previous.get("rows", 0))
    if spec.max_row_change is not None and before:
        change = (rows - before) / before
        if abs(change) > spec.max_row_change:
            out.append(
                Failure(
                    "<table>",
                    f"row_count_change(max {spec.max_row_change:.0%})",
                    rows,
                    [f"{before} -> {rows} rows ({change:+.0%})"],
                    [],
                )
            )
    if spec.max_missing_increase is not None:
        for name, col in profile.get("columns", {}).items():
            prev = previous.get("columns", {}).get(name)
            if not prev or not col.get("count") or not prev.get("count"):
                continue
            for key in ("missing", "infinite"):
                now = col.get(key, 0) / col["count"]
                then = prev.get(key, 0) / prev["count"]
                if now - then > spec.max_missing_increase:
                    out.append(
                        Failure(
                            name,
                            f"{key}_share_increase(max +{spec.max_missing_increase:.0%})",
                            int(col.get(key, 0)),
                            [f"{then:.1%} -> {now:.1%}"],
                            [],
                        )
                    )
    return out


@dataclass
class Checks:
    """What a table is compared with besides its schema, and how the report names it: the
    validate stage, `mlops validate` and the Dask path take the same settings.

    `previous`: the previous span's profile; `reference`: a model's reference profile; `drift`
    and `on_drift`: the drift tests and what a drift means; `anomaly_spec`: the span-to-span
    anomaly limits; `display` and `schema_name`: names shown in the report."""

    display: str | None = None
    schema_name: str | None = None
    previous: dict[str, Any] | None = None
    reference: dict[str, Any] | None = None
    drift: DriftSpec | None = None
    on_drift: str = "continue"
    anomaly_spec: AnomalySpec | None = None


def validate_table(
    path: Path | str,
    schema: dict[str, Any] | None,
    checks: Checks | None = None,
    *,
    chunk_bytes: int = CHUNK_BYTES,
    progress: Progress | None = None,
) -> ValidationReport:
    """Validate, profile and compare the table at `path` in one pass over its chunks.

    `schema` None skips the schema checks (profile and drift only); `checks` says what else to
    compare with. Library code: never prints, never raises on invalid data (the report says what
    failed; the caller decides the exit code).
    """
    c = checks or Checks()
    chunks = iter_chunks(path, chunk_bytes=chunk_bytes, progress=progress)
    return validate_chunks(chunks, schema, replace(c, display=c.display or str(path)))


def validate_chunks(
    chunks: Iterable[pd.DataFrame],
    schema: dict[str, Any] | None,
    checks: Checks | None = None,
) -> ValidationReport:
    """`validate_table` on frames already read (an in-memory frame is `[df]`)."""
    c = checks or Checks()
    previous, reference, drift = c.previous, c.reference, c.drift
    t0 = time.perf_counter()
    validator = Validator(schema) if schema is not None else None
    expected = validator.expected_dtypes() if validator is not None else {}
    profiler = Profiler()
    offset = 0
    width = 0
    only: list[ColumnChunk] | None = None
    for chunk in chunks:
        if profiler.chunks == 0:
            width = chunk.shape[1]
            for col in chunk.columns:
                expected.setdefault(str(col), _dtype(chunk[col]))
        summaries = summarize_frame(chunk, expected)
        only = summaries if profiler.chunks == 0 else None
        if validator is not None:
            validator.add(chunk, summaries, offset)
        profiler.add(summaries)
        offset += len(chunk)
    profile = profiler.result()
    failures = validator.finish() if validator is not None else []
    failures += anomalies(profile, previous, c.anomaly_spec)
    report = ValidationReport(
        c.display or "<frame>",
        c.schema_name,
        offset,
        width,
        failures,
        profile,
        on_drift=c.on_drift,
        chunks=profiler.chunks,
    )
    # a small table (one chunk): compare the column summaries themselves, so small-sample tests
    # (KS, chi-squared) are exactly scipy's; a large one: compare its profile's sketch (1,001
    # quantile points, or every value), which costs milliseconds instead of a pass over the rows
    small = only is not None and offset <= EXACT_ROWS
    current: list[ColumnChunk] | dict[str, Any] = only if small and only else profile
    roles = roles_in_schema(schema)
    columns = [str(c) for c in profile["columns"] if str(c) not in roles] if roles else None
    if roles:
        report.notes.append(
            "not checked for drift (identifier or time columns in the schema): "
            + ", ".join(f"{c} ({r})" for c, r in roles.items())
        )
    if previous is not None:
        report.previous = compare(
            current, previous, drift, columns=columns, label="this span vs the previous"
        )
    else:
        report.notes.append("no previous profile: span drift not checked (first run?)")
    if reference is not None:
        report.reference = compare(
            current, reference, drift, columns=columns, label="data vs model reference"
        )
    report.seconds = time.perf_counter() - t0
    return report


def _dtype(series: pd.Series) -> str:
    from mlops.data.columns import dtype_name

    return dtype_name(series)

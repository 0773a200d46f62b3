"""Validation, profiling and drift on a Dask cluster, without collecting the rows anywhere.

Each partition is checked and summarised on the worker that reads it (`partition_state`: the
same `Validator` and `Profiler` the local path feeds chunk by chunk, with row numbers counted
from the partition's first row). The states are merged in a tree on the workers
(`merge_states`: counts add, moments combine, quantile sketches merge, row numbers shift by the
rows before them), so only one state per column - at most 1,001 sketch points and the category
counts - reaches this process. Drift and anomalies are then computed from the merged profile,
as `mlops.data.validation.validate_chunks` does for a table of several chunks; a table of one
partition with at most 10,000 rows is compared row by row (the small-sample tests, exactly as
locally).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mlops.data.checks import Validator
from mlops.data.columns import ColumnChunk, dtype_name, summarize_frame
from mlops.data.drift import compare
from mlops.data.profile import Profiler
from mlops.data.validation import EXACT_ROWS, Checks, ValidationReport, anomalies
from mlops.engine.cluster import compute_result

if TYPE_CHECKING:
    import pandas as pd


FAN_IN = 8  # states merged per task of the reduction tree


@dataclass
class PartitionState:
    """What one partition (or a run of consecutive partitions) contributes to the report."""

    rows: int = 0
    partitions: int = 0
    width: int = 0
    profiler: Profiler = field(default_factory=Profiler)
    validator: Validator | None = None
    summaries: list[ColumnChunk] | None = None  # one small partition: kept for exact tests


def expected_dtypes(schema: dict[str, Any] | None, meta: pd.DataFrame) -> dict[str, str]:
    """The dtype each column is parsed as: the schema's, else the first partition's (as the
    local path takes them from the first chunk)."""
    expected = Validator(schema).expected_dtypes() if schema is not None else {}
    for col in meta.columns:
        expected.setdefault(str(col), dtype_name(meta[col]))
    return expected


def partition_state(
    df: pd.DataFrame, schema: dict[str, Any] | None, expected: dict[str, str]
) -> PartitionState:
    """Check and summarise one partition (runs on a worker)."""
    summaries = summarize_frame(df, expected)
    state = PartitionState(rows=len(df), partitions=1, width=df.shape[1])
    if schema is not None:
        state.validator = Validator(schema)
        state.validator.add(df, summaries, 0)
    state.profiler.add(summaries)
    if len(df) <= EXACT_ROWS:
        for s in summaries:  # row-ordered values are for locating failing rows only
            s.values = None
            s.unparsed = None
        state.summaries = summaries
    return state


def merge_states(*states: PartitionState) -> PartitionState:
    """Consecutive states, in table order, as one (runs on a worker)."""
    out = states[0]
    for nxt in states[1:]:
        if out.validator is not None and nxt.validator is not None:
            out.validator.merge(nxt.validator)
        elif out.validator is None:
            out.validator = nxt.validator
        out.profiler.merge(nxt.profiler)
        out.width = out.width or nxt.width
        out.rows += nxt.rows
        out.partitions += nxt.partitions
        out.summaries = None
    return out


def reduce_tree(items: list[Any], fan_in: int = FAN_IN) -> Any:
    """Delayed `merge_states` over `items` in groups of `fan_in`, order kept, to one."""
    import dask

    merge = dask.delayed(merge_states, pure=True)
    level = list(items)
    while len(level) > 1:
        level = [merge(*level[i : i + fan_in]) for i in range(0, len(level), fan_in)]
    return level[0]


def profile_state(
    client: Any, path: str, schema: dict[str, Any] | None, *, partition_bytes: int
) -> PartitionState:
    """Read `path` as a Dask dataframe and return its merged state (computed on the cluster)."""
    import dask

    from mlops.engine.frames import partitions, read_dask

    ddf = read_dask(path, partition_bytes=partition_bytes)
    expected = expected_dtypes(schema, ddf._meta)
    state_of = dask.delayed(partition_state, pure=True)
    states = [state_of(part, schema, expected) for part in partitions(ddf)]
    if not states:
        return PartitionState()
    return compute_result(client, reduce_tree(states), f"profiling {path}")


def validate_dask(
    client: Any,
    path: str,
    schema: dict[str, Any] | None,
    checks: Checks | None = None,
    *,
    partition_bytes: int = 64 << 20,
) -> ValidationReport:
    """`mlops.data.validation.validate_table`, computed partition by partition on the cluster."""
    c = checks or Checks()
    previous, reference, drift = c.previous, c.reference, c.drift
    t0 = time.perf_counter()
    state = profile_state(client, path, schema, partition_bytes=partition_bytes)
    profile = state.profiler.result()
    failures = state.validator.finish() if state.validator is not None else []
    failures += anomalies(profile, previous, c.anomaly_spec)
    report = ValidationReport(
        c.display or path,
        c.schema_name,
        state.rows,
        state.width,
        failures,
        profile,
        on_drift=c.on_drift,
        chunks=state.partitions,
    )
    small = state.partitions == 1 and state.summaries and state.rows <= EXACT_ROWS
    current: list[ColumnChunk] | dict[str, Any] = state.summaries if small else profile  # type: ignore[assignment]
    if previous is not None:
        report.previous = compare(current, previous, drift, label="this span vs the previous")
    else:
        report.notes.append("no previous profile: span drift not checked (first run?)")
    if reference is not None:
        report.reference = compare(current, reference, drift, label="data vs model reference")
    plural = "" if state.partitions == 1 else "s"
    report.notes.append(f"computed on the Dask cluster: {state.partitions} partition{plural}")
    report.seconds = time.perf_counter() - t0
    return report

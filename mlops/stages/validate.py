"""`validate`: check data against the contract, profile it, compare it with the previous span.

One pass over the input (streamed in chunks): every schema failure and anomaly is collected; the
statistics profile is written as a DVC output (`reports/profile.json`); drift against the previous
run's profile (read from the DVC cache through `dvc.lock`) is recorded and `drift.on_drift`
decides what it means. Invalid data, or drift with `on_drift: stop`, fails the stage with exit 3
and a table of every problem; nothing downstream runs and `mlops run` keeps `dvc.lock` as it was.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from mlops.adapters import dvc
from mlops.config.models import ValidateWith
from mlops.config.yamlfile import atomic_write_text
from mlops.data.render import drift_lines, failure_table
from mlops.data.schema import read_schema
from mlops.data.validation import Checks, ValidationReport, validate_table
from mlops.errors import DataValidationError

if TYPE_CHECKING:
    from mlops.config import Project, ResolvedStage

__all__ = ["failure_table", "run"]


def previous_profile(project: Project, stage: ResolvedStage) -> dict[str, Any] | None:
    """The profile this stage wrote in the last complete run (None on the first run)."""
    args: ValidateWith = stage.args
    found = dvc.locked_output(project.root, stage.name, args.profile)
    if found is None:
        return None
    try:
        data = json.loads(found.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("format") == 2 else None


def raise_if_failed(report: ValidationReport, schema_path: str) -> None:
    """DataValidationError (exit 3) listing every failure, or the drift that says stop."""
    if not report.valid:
        total = sum(f.count for f in report.failures)
        table = "\n".join(failure_table(report.failures, report.rows))
        raise DataValidationError(
            f"{report.input}: {len(report.failures)} failed checks, {total} failing values "
            f"(schema {schema_path}):\n{table}",
            f"Fix the data, or if the change is intended, update {schema_path} "
            "(`mlops validate --infer --force` drafts a new one) and commit it.",
            details=report.failure_dicts(),
        )
    if report.action == "stop":
        lines = "\n".join(drift_lines(report))
        raise DataValidationError(
            f"{report.input}: dataset drift, and pipeline.yaml says `on_drift: stop`:\n{lines}",
            "Look at the drift report (`mlops validate --html drift.html`); if the new data is "
            "right, set `on_drift: continue` or `retrain` for the validate stage.",
        )


def run(project: Project, stage: ResolvedStage) -> Iterator[str]:
    """Validate, profile and compare the input; with `engine: dask` partition by partition on
    the cluster (only the merged statistics come back to this process)."""
    from mlops.stages.engine import data_path, open_engine

    args: ValidateWith = stage.args
    schema = read_schema(project.path(args.schema_))
    previous = previous_profile(project, stage)
    checks = Checks(
        display=args.input,
        schema_name=args.schema_,
        previous=previous,
        drift=args.drift,
        on_drift=args.drift.on_drift,
        anomaly_spec=args.anomalies,
    )
    source = data_path(project, args.input)
    with open_engine(project, [source]) as engine:
        if engine.dask:
            from mlops.engine.profiling import validate_dask

            yield f"validate: {engine.info.line()}"
            report = validate_dask(
                engine.client, source, schema, checks, partition_bytes=engine.partition_bytes
            )
        else:
            report = validate_table(source, schema, checks)
    # the report is written even on failure: it lists every problem (a CI artifact)
    atomic_write_text(
        project.path(args.report), json.dumps(report.to_dict(timing=False), indent=2) + "\n"
    )
    raise_if_failed(report, args.schema_)
    atomic_write_text(project.path(args.profile), json.dumps(report.profile, indent=1) + "\n")
    what = "partition" if engine.dask else "chunk"
    yield (
        f"validate: {report.rows} rows x {report.columns} columns match {args.schema_} "
        f"({report.chunks} {what}{'s' if report.chunks != 1 else ''}, {report.seconds:.2f}s)"
    )
    yield from drift_lines(report)

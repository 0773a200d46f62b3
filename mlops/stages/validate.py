"""`validate`: check data against the contract (`data/schema.yaml`); stop the run on failure."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from mlops.config.models import ValidateWith
from mlops.config.yamlfile import atomic_write_text
from mlops.data.io import read_table
from mlops.data.schema import Failure, read_schema, validate_frame
from mlops.errors import DataValidationError

if TYPE_CHECKING:
    from mlops.config import Project, ResolvedStage


def failure_table(failures: list[Failure], rows: int) -> list[str]:
    """Plain-text table: column, check, failing count and share, examples, row numbers."""
    header = ("column", "check", "failing", "share", "examples", "rows")
    body = [
        (
            f.column,
            f.check[:40],
            str(f.count),
            f"{f.count / rows:.2%}" if rows else "-",
            ", ".join(repr(e) for e in f.examples[:3])[:40],
            ", ".join(map(str, f.rows[:5])),
        )
        for f in failures
    ]
    widths = [max(len(r[i]) for r in (header, *body)) for i in range(len(header))]
    return [
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
        for r in (header, *body)
    ]


def run(project: Project, stage: ResolvedStage) -> list[str]:
    args: ValidateWith = stage.args
    df = read_table(project.path(args.input))
    schema = read_schema(project.path(args.schema_))
    failures = validate_frame(df, schema)
    if failures:
        total = sum(f.count for f in failures)
        table = "\n".join(failure_table(failures, len(df)))
        raise DataValidationError(
            f"{args.input}: {total} failing values in {len(failures)} checks "
            f"(schema {args.schema_}):\n{table}",
            f"Fix the data, or if the change is intended, update {args.schema_} "
            "(`mlops validate --infer` drafts a new one) and commit it.",
        )
    report = {
        "valid": True,
        "input": args.input,
        "schema": args.schema_,
        "rows": len(df),
        "columns": int(df.shape[1]),
        "failures": [],
    }
    atomic_write_text(project.path(args.report), json.dumps(report, indent=2) + "\n")
    return [f"validate: {len(df)} rows x {df.shape[1]} columns match {args.schema_}"]

"""`ingest`: read a source (file, directory, or a dataset an installed package ships) into raw data.

Sources: a `.csv`/`.parquet` path (or a directory of them), `package:palmerpenguins`, or
`sklearn:<name>` for scikit-learn's bundled datasets (iris, wine, breast_cancer, diabetes).
`span: {column, from, to}` keeps rows in an inclusive range, to simulate new data arriving.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mlops.config.models import IngestWith
from mlops.data.io import read_table, write_table
from mlops.errors import UsageError

if TYPE_CHECKING:
    import pandas as pd

    from mlops.config import Project, ResolvedStage

SKLEARN_DATASETS = ("iris", "wine", "breast_cancer", "diabetes")


def load_source(source: str, project: Project) -> pd.DataFrame:
    if source == "package:palmerpenguins":
        try:
            from palmerpenguins import load_penguins
        except ImportError:
            raise UsageError(
                "source package:palmerpenguins needs the palmerpenguins package",
                "pip install palmerpenguins",
            ) from None
        return load_penguins()
    if source.startswith("package:"):
        raise UsageError(f"unknown package dataset {source!r}", "Known: package:palmerpenguins.")
    if source.startswith("sklearn:"):
        name = source.split(":", 1)[1]
        if name not in SKLEARN_DATASETS:
            raise UsageError(
                f"unknown dataset {source!r}", f"Known: {', '.join(SKLEARN_DATASETS)}."
            )
        from sklearn import datasets

        return getattr(datasets, f"load_{name}")(as_frame=True).frame
    return read_table(project.path(source))


def select_span(df: pd.DataFrame, args: IngestWith) -> pd.DataFrame:
    span = args.span
    if span is None:
        return df
    if span.column not in df.columns:
        raise UsageError(
            f"span column {span.column!r} is not in the source",
            f"Columns: {', '.join(map(str, df.columns))}.",
        )
    col = df[span.column]
    mask = col.notna()
    if span.from_ is not None:
        mask &= col >= span.from_
    if span.to is not None:
        mask &= col <= span.to
    return df[mask]


def run(project: Project, stage: ResolvedStage) -> list[str]:
    args: IngestWith = stage.args
    df = load_source(args.source, project)
    before = len(df)
    df = select_span(df, args)
    if args.columns:
        missing = [c for c in args.columns if c not in df.columns]
        if missing:
            raise UsageError(f"columns not in the source: {', '.join(missing)}")
        df = df[args.columns]
    if df.empty:
        raise UsageError(f"no rows left from {args.source} after selecting the span")
    write_table(df.reset_index(drop=True), project.path(args.output))
    return [f"ingest: {len(df)} of {before} rows, {df.shape[1]} columns -> {args.output}"]

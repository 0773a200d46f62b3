"""`ingest`: read a source (file, directory, or a dataset an installed package ships) into raw data.

Sources: a `.csv`/`.parquet` path (or a directory of them), `package:palmerpenguins`, or
`sklearn:<name>` for scikit-learn's bundled datasets (iris, wine, breast_cancer, diabetes).
`span: {column, from, to, format}` keeps rows in an inclusive range (as time when the bounds are
dates or datetimes: `mlops.stages.span`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from mlops.config.models import IngestWith
from mlops.data.io import read_table
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
    from mlops.stages.span import span_mask

    return df[span_mask(df[span.column], span)]


def _select(df: pd.DataFrame, args: IngestWith) -> pd.DataFrame:
    """The span and the columns pipeline.yaml asks for (one frame, or one partition)."""
    df = select_span(df, args)
    if args.columns:
        missing = [c for c in args.columns if c not in df.columns]
        if missing:
            raise UsageError(f"columns not in the source: {', '.join(missing)}")
        df = df[args.columns]
    return df


def _select_partition(df: pd.DataFrame, args: IngestWith) -> pd.DataFrame:
    return _select(df, args).reset_index(drop=True)


def run(project: Project, stage: ResolvedStage) -> Iterator[str]:
    """Read the source, keep the span and columns asked for, write the output.

    With `engine: dask` and a file source (a file, a directory, a glob, a URL) the workers read
    and filter the partitions; they reach this process one at a time, in order, to be written.
    An output without a table suffix is written as a directory of Parquet parts."""
    from mlops.engine.frames import write_frames
    from mlops.stages.engine import data_path, open_engine

    args: IngestWith = stage.args
    on_cluster = not args.source.startswith(("package:", "sklearn:"))
    source = data_path(project, args.source)
    if project.pipeline.engine.kind == "dask" and on_cluster:
        with open_engine(project, [source]) as engine:
            yield f"ingest: {engine.info.line()}"
            import dask

            from mlops.engine.frames import iter_computed, partitions, read_dask

            ddf = read_dask(source, partition_bytes=engine.partition_bytes)
            select = dask.delayed(_select_partition, pure=True)
            frames = iter_computed(engine.client, [select(p, args) for p in partitions(ddf)])
            rows, width, n = write_frames(frames, project.path(args.output))
        if not rows:
            raise UsageError(f"no rows left from {args.source} after selecting the span")
        yield f"ingest: {rows} rows, {width} columns from {n} partitions -> {args.output}"
        return
    df = load_source(args.source, project)
    before = len(df)
    df = _select(df, args)
    if df.empty:
        raise UsageError(f"no rows left from {args.source} after selecting the span")
    write_frames([df.reset_index(drop=True)], project.path(args.output))
    yield f"ingest: {len(df)} of {before} rows, {df.shape[1]} columns -> {args.output}"

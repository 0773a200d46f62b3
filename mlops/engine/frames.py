"""Tables as Dask dataframes: partitioned Parquet datasets, many CSVs, object storage.

`read_dask(path)` accepts a file, a directory (its `.csv`/`.parquet` files in name order, as the
local path reads them), a glob (`data/landing/*.csv`) or a URL (`s3://bucket/prefix/`, with the
s3fs package and credentials from the environment). Parquet is read by `dask.dataframe.
read_parquet` (partitions of about `partition_bytes`); CSV is cut into blocks of about
`partition_bytes` at line ends and each block is parsed by pandas with its own type inference,
exactly as the local path parses its chunks, so a string deep in a numeric column is a
validation failure, not a crash (`dask.dataframe.read_csv` would impose the types of the first
rows). A quoted field may not contain a line break (as with Dask's reader).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops.data.csvcheck import problem
from mlops.data.io import TABLE_SUFFIXES
from mlops.engine.cluster import watch
from mlops.errors import DataValidationError, UsageError

if TYPE_CHECKING:
    import dask.dataframe as dd
    import pandas as pd

PARQUET_SUFFIXES = (".parquet", ".pq")


def is_url(path: str) -> bool:
    return "://" in path


def table_files(path: str) -> tuple[list[str], str]:
    """(files, format): the table files `path` names, in name order, and `csv` or `parquet`."""
    import fsspec

    fs, _, paths = fsspec.core.get_fs_token_paths(path)
    files: list[str] = []
    for p in paths:
        if fs.isdir(p):
            files += [f for f in fs.find(p) if Path(f).suffix.lower() in TABLE_SUFFIXES]
        elif Path(p).suffix.lower() in TABLE_SUFFIXES:
            files.append(p)
    files = sorted(set(files))
    if not files:
        if not paths or not any(fs.exists(p) for p in paths):
            raise UsageError(f"input {path} does not exist", "Run the stage that produces it.")
        raise UsageError(f"{path} holds no .csv or .parquet files")
    kinds = {"parquet" if Path(f).suffix.lower() in PARQUET_SUFFIXES else "csv" for f in files}
    if len(kinds) > 1:
        raise UsageError(
            f"{path} mixes CSV and Parquet files", "Keep one format per partitioned dataset."
        )
    protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    if protocol not in ("file", "local"):
        files = [f"{protocol}://{f}" for f in files]
    return files, kinds.pop()


def _header(path: str) -> bytes:
    import fsspec

    with fsspec.open(path, "rb") as fh:
        return fh.readline()


def _parse_block(block: bytes, header: bytes, first: bool) -> pd.DataFrame:
    """One CSV block as pandas reads a chunk: the header line, then the block's lines."""
    import io

    import pandas as pd

    data = block if first else header + block
    return pd.read_csv(io.BytesIO(data), low_memory=False)


def read_dask(path: str, *, partition_bytes: int = 64 << 20) -> dd.DataFrame:
    """The table at `path` (see the module docstring) as a Dask dataframe, not yet computed."""
    import dask
    import dask.dataframe as dd
    from dask.bytes import read_bytes

    files, kind = table_files(path)
    if kind == "parquet":
        return dd.read_parquet(files, blocksize=partition_bytes)
    parts: list[Any] = []
    for f in files:
        found = problem(header_sample(f), whole=False)
        if found:
            raise DataValidationError(f"{f} {found[0]}", found[1])
        header = _header(f)
        _, blocks = read_bytes(f, delimiter=b"\n", blocksize=partition_bytes, sample=False)
        for i, block in enumerate(blocks[0]):
            parts.append(dask.delayed(_parse_block)(block, header, i == 0))
    meta = _parse_block(header_sample(files[0]), b"", True).iloc[:0]
    return dd.from_delayed(parts, meta=meta, verify_meta=False)


def header_sample(path: str, size: int = 1 << 16) -> bytes:
    """The first whole lines of a CSV (about `size` bytes): enough for column names and types."""
    import fsspec

    with fsspec.open(path, "rb") as fh:
        data = fh.read(size)
    if len(data) == size and b"\n" in data:
        data = data[: data.rindex(b"\n") + 1]
    return data


def partitions(ddf: dd.DataFrame) -> list[Any]:
    """One delayed pandas frame per partition, in order."""
    return list(ddf.to_delayed())


def iter_computed(client: Any, parts: list[Any], ahead: int = 2) -> Iterator[pd.DataFrame]:
    """The partitions' frames in order, at most `ahead` computed beyond the one being used
    (so a writer on this machine holds a bounded number of partitions)."""
    futures = [client.compute(p) for p in parts[:ahead]]
    nxt = len(futures)
    while futures:
        frame = watch(client, futures.pop(0), "reading a partition")
        if nxt < len(parts):
            futures.append(client.compute(parts[nxt]))
            nxt += 1
        yield frame


def write_frames(frames: Iterable[pd.DataFrame], path: Path | str) -> tuple[int, int, int]:
    """Write frames in order as one table; returns (rows, columns, parts written).

    A `.csv` path becomes one file (the header once); a `.parquet` path one file whose column
    types are the frames' types unified (an int column that is float in a later frame is
    float); a path without a table suffix a directory of `part-NNNNN.parquet` files, one per
    frame. Memory holds one frame at a time. The result replaces `path` only when complete."""
    import os
    import shutil
    import tempfile

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = path.suffix.lower()
    rows = columns = parts = 0
    if suffix == ".csv":
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.tmp-", dir=path.parent)
        os.close(fd)
        tmp = Path(tmp_name)
        try:
            for df in frames:
                columns = columns or df.shape[1]
                df.to_csv(tmp, index=False, header=parts == 0, mode="w" if parts == 0 else "a")
                rows += len(df)
                parts += 1
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return rows, columns, parts
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))
    try:
        for df in frames:
            columns = columns or df.shape[1]
            df.to_parquet(tmp / f"part-{parts:05d}.parquet", index=False)
            rows += len(df)
            parts += 1
        if suffix in TABLE_SUFFIXES:
            _concat_parquet(sorted(tmp.iterdir()), tmp / "all.parquet")
            os.replace(tmp / "all.parquet", path)
            shutil.rmtree(tmp, ignore_errors=True)
            return rows, columns, parts
        old = None
        if path.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.old-", dir=path.parent))
            os.replace(path, old / "x")
        os.replace(tmp, path)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return rows, columns, parts


def _concat_parquet(files: list[Path], out: Path) -> None:
    """Parquet files as one, each read and written in turn, cast to their unified schema."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        schema = pa.unify_schemas(
            [pq.read_schema(f).remove_metadata() for f in files], promote_options="permissive"
        )
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise UsageError(
            f"partitions of the table disagree on column types ({exc})",
            "Write a directory (an output path without .parquet) or a .csv file instead.",
        ) from None
    with pq.ParquetWriter(out, schema) as writer:
        for f in files:
            table = pq.read_table(f)
            try:
                writer.write_table(table.cast(schema))
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise UsageError(
                    f"partitions of the table disagree on column types ({exc})",
                    "Write a directory (an output path without .parquet) or a .csv file instead.",
                ) from None

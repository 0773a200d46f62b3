"""Reading a CSV or Parquet file (or a directory of them) in chunks of bounded size.

A file smaller than one chunk comes back as one frame, so small data is handled exactly as
before; a larger one streams, so memory stays bounded whatever the file's size. `progress` is
called as `progress(done, total)` in bytes after each chunk.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from mlops.data.csvcheck import reading, sniff
from mlops.data.io import TABLE_SUFFIXES
from mlops.errors import UsageError

if TYPE_CHECKING:
    import pandas as pd

Progress = Callable[[int, int], None]
CHUNK_BYTES = 32 << 20  # text bytes of CSV per chunk (about 100k-200k rows of 20 columns)
MIN_ROWS = 10_000


def table_files(path: Path) -> list[Path]:
    """The table files at `path`: the file itself, or a directory's files in name order."""
    if path.is_dir():
        parts = sorted(p for p in path.rglob("*") if p.suffix.lower() in TABLE_SUFFIXES)
        if not parts:
            raise UsageError(f"{path} holds no .csv or .parquet files")
        return parts
    if not path.exists():
        raise UsageError(f"input {path} does not exist", "Run the stage that produces it first.")
    if path.suffix.lower() not in TABLE_SUFFIXES:
        raise UsageError(f"cannot read {path}: use a .csv or .parquet file")
    return [path]


def _csv_rows_per_chunk(path: Path, chunk_bytes: int) -> int:
    with open(path, "rb") as fh:
        head = fh.read(1 << 16)
    lines = max(head.count(b"\n") - 1, 1)
    per_line = max(len(head) / (lines + 1), 1.0)
    return max(MIN_ROWS, int(chunk_bytes / per_line))


def iter_chunks(
    path: Path | str,
    *,
    chunk_bytes: int = CHUNK_BYTES,
    progress: Progress | None = None,
) -> Iterator[pd.DataFrame]:
    """Frames of at most about `chunk_bytes` of input each, in file order."""
    import pandas as pd

    files = table_files(Path(path))
    total = sum(f.stat().st_size for f in files)
    done = 0
    for f in files:
        size = f.stat().st_size
        if f.suffix.lower() == ".csv":
            sniff(f)
            rows = _csv_rows_per_chunk(f, chunk_bytes)
            with open(f, "rb") as fh, reading(f):
                reader = pd.read_csv(fh, chunksize=rows, low_memory=False)
                for chunk in reader:
                    if progress is not None:
                        progress(done + min(fh.tell(), size), total)
                    yield chunk
        else:
            import pyarrow.parquet as pq

            pf = pq.ParquetFile(f)
            n = pf.metadata.num_rows or 1
            width = max(pf.metadata.num_columns, 1)
            batch = max(MIN_ROWS, int(chunk_bytes / (8 * width)))
            seen = 0
            for rb in pf.iter_batches(batch_size=batch):
                seen += rb.num_rows
                frame = rb.to_pandas()
                if progress is not None:
                    progress(done + int(size * seen / n), total)
                yield frame
        done += size
    if progress is not None:
        progress(total, total)

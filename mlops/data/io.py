"""Reading and writing tables (CSV, Parquet) and hashing files the way DVC does."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import TYPE_CHECKING

from mlops.config.yamlfile import new_temp
from mlops.data.csvcheck import reading, sniff
from mlops.errors import UsageError

if TYPE_CHECKING:
    import pandas as pd

TABLE_SUFFIXES = (".csv", ".parquet", ".pq")


def read_table(path: Path | str) -> pd.DataFrame:
    """A CSV or Parquet file, or a directory of them (read in name order)."""
    import pandas as pd

    path = Path(path)
    if path.is_dir():
        parts = sorted(p for p in path.rglob("*") if p.suffix.lower() in TABLE_SUFFIXES)
        if not parts:
            raise UsageError(f"{path} holds no .csv or .parquet files")
        return pd.concat([read_table(p) for p in parts], ignore_index=True)
    if not path.exists():
        raise UsageError(f"input {path} does not exist", "Run the stage that produces it first.")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        sniff(path)
        with reading(path):
            return pd.read_csv(path)
    if suffix in (".parquet", ".pq"):
        return pd.read_parquet(path)
    raise UsageError(f"cannot read {path}: use a .csv or .parquet file")


def write_table(df: pd.DataFrame, path: Path | str) -> None:
    """Write atomically; the format follows the suffix (.csv or .parquet)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = path.suffix.lower()
    if suffix not in TABLE_SUFFIXES:
        raise UsageError(f"cannot write {path}: use a .csv or .parquet file name")
    fd, tmp = new_temp(path, suffix)
    os.close(fd)
    try:
        if suffix == ".csv":
            df.to_csv(tmp, index=False)
        else:
            df.to_parquet(tmp, index=False)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def md5_file(path: Path | str, chunk: int = 1 << 20) -> str:
    """The md5 of a file's bytes: what DVC 3 records for a file in dvc.lock."""
    h = hashlib.md5()  # noqa: S324 - content address, as DVC uses it
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def sha256_file(path: Path | str, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()

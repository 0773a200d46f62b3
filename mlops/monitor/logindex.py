"""The incremental columnar index of a JSON-lines log: for each log file, the columns parsed so
far as Arrow IPC files under `<log dir>/.index/`, with the byte offset they cover and the file's
inode (`mlops.monitor.logdata.read_columns` reads and extends it)."""

from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

from mlops.serve.logparse import Parsed

if TYPE_CHECKING:
    pass

INDEX_DIR = ".index"
FORMAT = 1


TABLES = ("predictions", "feedback", "errors")


def _index_paths(index: Path, log: Path) -> dict[str, Path]:
    out = {t: index / f"{log.name}.{t}.arrow" for t in TABLES}
    out["meta"] = index / f"{log.name}.json"
    return out


def _read_index(index: Path, log: Path, st: os.stat_result) -> tuple[dict, Parsed] | None:
    import pyarrow as pa

    paths = _index_paths(index, log)
    try:
        meta = json.loads(paths["meta"].read_text(encoding="utf-8"))
        if (
            meta.get("format") != FORMAT
            or meta.get("inode") != st.st_ino
            or not 0 <= int(meta.get("offset", -1)) <= st.st_size
        ):
            return None
        tables = {}
        for t in TABLES:
            with pa.memory_map(str(paths[t])) as source:
                tables[t] = pa.ipc.open_file(source).read_all()
    except (OSError, ValueError, TypeError, pa.ArrowException):
        return None
    parsed = Parsed(
        tables["predictions"],
        tables["feedback"],
        tables["errors"],
        int(meta.get("lines", 0)),
        int(meta.get("bad", 0)),
        int(meta.get("unknown", 0)),
    )
    return meta, parsed


def _write_index(index: Path, log: Path, inode: int, offset: int, parsed: Parsed) -> bool:
    import pyarrow as pa

    from mlops.config.yamlfile import atomic_write_text

    paths = _index_paths(index, log)
    try:
        index.mkdir(exist_ok=True)
        for t in TABLES:
            # an IPC file holds one dictionary per column: pieces parsed apart are unified
            table = getattr(parsed, t).unify_dictionaries().combine_chunks()
            tmp = paths[t].with_name(f".{paths[t].name}.tmp-{os.getpid()}")
            # uncompressed: read back memory-mapped without a copy (about a third of the
            # JSON's size; zstd would halve that but cost ~0.2 s per million rows to read)
            with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_file(sink, table.schema) as w:
                w.write_table(table)
            os.replace(tmp, paths[t])
        lo, hi = parsed.ts_range
        meta = {
            "format": FORMAT,
            "log": log.name,
            "inode": inode,
            "offset": offset,
            "lines": parsed.lines,
            "bad": parsed.bad,
            "unknown": parsed.unknown,
            "ts_min": lo,
            "ts_max": hi,
            "written": time.time(),
        }
        atomic_write_text(paths["meta"], json.dumps(meta) + "\n")
        return True
    except (OSError, pa.ArrowException):
        return False


def _prune_index(index: Path, logs: list[Path]) -> None:
    """Drop the index of log files that no longer exist (the writer pruned them)."""
    if not index.is_dir():
        return
    alive = {p.name for p in logs}
    for p in index.iterdir():
        with contextlib.suppress(OSError):
            if p.name.startswith("."):  # a temporary file some reader left behind
                if time.time() - p.stat().st_mtime > 3600:
                    p.unlink()
            elif p.name.split(".jsonl", 1)[0] + ".jsonl" not in alive:
                p.unlink()

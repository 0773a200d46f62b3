"""The prediction log as columns: parsed once, kept in an incremental columnar index.

`mlops serve` writes JSON Lines (`mlops.serve.log`; format in docs/architecture.md, "Prediction
log"). Parsing JSON costs a few microseconds per line in Python, so a log of a million one-row
requests takes seconds to read; monitoring reads the same log again on every scheduled run. The
log is append-only (a file is only ever extended, then closed and eventually deleted), so what
was parsed once stays valid: for each log file the parsed columns are stored as Arrow IPC files
under `<log dir>/.index/`, with the byte offset they cover and the file's inode. A later read
parses only the bytes appended since, and reads the rest from the index (memory-mapped).

Three tables come out:

- `predictions`, one row per predicted row: `ts`, `request_id`, `row` (position in the
  request), `n` (rows in the request), `version`, `endpoint`, `latency_ms` (of the request),
  `prediction`, `confidence` (the highest class probability, when logged), and each input
  feature as `in.<name>` (float64 for numbers, dictionary-encoded text otherwise);
- `feedback`, one row per labelled row: `ts`, `request_id`, `row`, `label`;
- `errors`, one row per refused or failed request: `ts`, `request_id`, `endpoint`, `status`,
  `error`, `version`, `latency_ms`, `fields` (JSON: problems per input field).

Robustness: a line that is not a JSON object, or an entry whose fields have the wrong shape (a
list of another length than `n`, a `ts` that is not a number), is skipped and counted; a last
line without its newline (being written) is left for the next read; an unreadable file is
noted. An index that does not match its log file (another inode, a shorter file, another
format) is rebuilt. An index that cannot be written (read-only directory) only costs speed.

Where each job lives: `mlops.serve.logjson` (`parse_bytes`), `mlops.serve.logparse` (the careful
parser, entry by entry, and the column helpers), `mlops.serve.logarrow` (the fast parser: Arrow's
JSON reader; the parsers sit in serve beside the log's writer, which ships segments with them),
`mlops.monitor.logindex` (the on-disk index); this module reads (what is new, in parallel
pieces, merged with the index) and holds `LogColumns`.
"""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops.monitor.logindex import (  # noqa: F401 - kept importable from here
    FORMAT,
    INDEX_DIR,
    TABLES,
    _prune_index,
    _read_index,
    _write_index,
)
from mlops.serve.log import log_files
from mlops.serve.logjson import parse_bytes
from mlops.serve.logparse import (  # noqa: F401 - kept importable from here
    FEATURE_PREFIX,
    Parsed,
    concat,
)

if TYPE_CHECKING:
    import pyarrow as pa

PARALLEL_BYTES = 24 << 20  # parse in two processes when at least this much is new
PIECE_BYTES = 8 << 20  # a work unit of the parallel parse


# ---- parsing ---------------------------------------------------------------------------------


def _parse_region(path: str, start: int, end: int) -> Parsed:
    """Parse bytes [start, end) of a log file (a process-pool work unit)."""
    with open(path, "rb") as fh:
        fh.seek(start)
        data = fh.read(end - start)
    return parse_bytes(data)


# ---- reading the whole log ---------------------------------------------------------------------


@dataclass
class LogColumns:
    """Every entry of the log since a time, as three tables, and what reading it cost."""

    predictions: pa.Table
    feedback: pa.Table
    errors: pa.Table
    directory: str
    files: int = 0
    lines: int = 0
    bad: int = 0
    unknown: int = 0
    bytes_parsed: int = 0  # JSON parsed in this read
    bytes_indexed: int = 0  # read from the index instead
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """What was read, for reports (no table contents)."""
        return {
            "directory": self.directory,
            "files": self.files,
            "lines": self.lines,
            "bad_lines": self.bad,
            "unknown_entries": self.unknown,
            "bytes_parsed": self.bytes_parsed,
            "bytes_from_index": self.bytes_indexed,
            "seconds": round(self.seconds, 3),
            "notes": self.notes,
        }


def _pieces(size_from: int, size_to: int, data_path: Path) -> list[tuple[int, int]]:
    """Split [from, to) at newlines into pieces of about PIECE_BYTES."""
    out = []
    start = size_from
    with open(data_path, "rb") as fh:
        while start < size_to:
            cut = min(start + PIECE_BYTES, size_to)
            if cut < size_to:
                fh.seek(cut)
                rest = fh.read(min(1 << 20, size_to - cut))
                nl = rest.find(b"\n")
                cut = size_to if nl < 0 else cut + nl + 1
            out.append((start, cut))
            start = cut
    return out


def _complete_end(path: Path, start: int, size: int) -> int:
    """The offset just after the last newline in [start, size) (start when there is none)."""
    with open(path, "rb") as fh:
        pos = size
        while pos > start:
            step = min(1 << 16, pos - start)
            fh.seek(pos - step)
            block = fh.read(step)
            nl = block.rfind(b"\n")
            if nl >= 0:
                return pos - step + nl + 1
            pos -= step
    return start


def _can_fork() -> bool:
    return sys.platform.startswith("linux") and threading.active_count() == 1


def _parse_all(units: list[tuple[str, int, int]], parallel: bool) -> list[Parsed]:
    if parallel and len(units) > 1 and _can_fork():
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        ctx = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(2, mp_context=ctx) as pool:
            return list(pool.map(_parse_region, *zip(*units, strict=True)))
    return [_parse_region(*u) for u in units]


def read_columns(
    directory: Path | str,
    since: float | None = None,
    *,
    use_index: bool = True,
    parallel: bool = True,
) -> LogColumns:
    """Every complete entry of the log at `directory` with `ts >= since` (all when None).

    Parses only what the index does not cover yet, in two processes when that is a lot, and
    updates the index (unless `use_index` is False or the directory is read-only).
    """
    from mlops.monitor.memory import small_pages

    with small_pages():
        return _read_columns(directory, since, use_index=use_index, parallel=parallel)


def _read_columns(
    directory: Path | str, since: float | None, *, use_index: bool, parallel: bool
) -> LogColumns:
    import pyarrow as pa
    import pyarrow.compute as pc

    t0 = time.perf_counter()
    d = Path(directory)
    out = LogColumns(pa.table({}), pa.table({}), pa.table({}), str(d))
    if not d.is_dir():
        out.notes.append(f"no prediction log at {d}")
        out.seconds = time.perf_counter() - t0
        return _empty(out)
    logs = log_files(d)
    _note_other_files(d, logs, out.notes)
    index = d / INDEX_DIR
    if use_index:
        _prune_index(index, logs)
    parts: list[Parsed] = []
    pending: list[tuple[str, int]] = []  # (file, bytes after its last newline)
    todo: list[tuple[Path, int, int, int, Parsed | None]] = []  # log, inode, from, to, cached
    for log in logs:
        try:
            st = log.stat()
        except OSError as exc:
            out.notes.append(f"cannot read {log.name}: {exc.strerror}")
            continue
        out.files += 1
        found = _read_index(index, log, st) if use_index else None
        if found is not None:
            meta, cached = found
            offset = int(meta["offset"])
            hi = meta.get("ts_max")
            end = _complete_end(log, offset, st.st_size) if st.st_size > offset else offset
            pending += [(log.name, st.st_size - end)] if st.st_size > end else []
            if end == offset:
                out.bytes_indexed += offset
                out.lines, out.bad, out.unknown = (
                    out.lines + cached.lines,
                    out.bad + cached.bad,
                    out.unknown + cached.unknown,
                )
                if since is None or hi is None or hi >= since:
                    parts.append(cached)
                continue
            out.bytes_indexed += offset
            todo.append((log, st.st_ino, offset, end, cached))
        else:
            try:
                end = _complete_end(log, 0, st.st_size)
            except OSError as exc:
                out.notes.append(f"cannot read {log.name}: {exc.strerror}")
                continue
            pending += [(log.name, st.st_size - end)] if st.st_size > end else []
            todo.append((log, st.st_ino, 0, end, None))
    units: list[tuple[str, int, int]] = []
    owners: list[int] = []
    total_new = sum(end - start for _, _, start, end, _ in todo)
    for i, (log, _, start, end, _) in enumerate(todo):
        if end <= start:
            continue
        pieces = _pieces(start, end, log) if total_new >= PARALLEL_BYTES else [(start, end)]
        for a, b in pieces:
            units.append((str(log), a, b))
            owners.append(i)
    try:
        results = _parse_all(units, parallel and total_new >= PARALLEL_BYTES)
    except OSError as exc:
        out.notes.append(f"cannot read the log: {exc.strerror or exc}")
        results = []
        todo = []
    by_owner: dict[int, list[Parsed]] = {}
    for owner, res in zip(owners, results, strict=True):
        by_owner.setdefault(owner, []).append(res)
    unwritable = False
    for i, (log, inode, start, end, cached) in enumerate(todo):
        got = ([cached] if cached is not None else []) + by_owner.get(i, [])
        merged = _merge(got)
        out.bytes_parsed += end - start
        out.lines += merged.lines
        out.bad += merged.bad
        out.unknown += merged.unknown
        if use_index and not unwritable and not _write_index(index, log, inode, end, merged):
            unwritable = True
            out.notes.append(f"the index could not be written in {index} (read-only?)")
        parts.append(merged)
    if out.bad:
        out.notes.append(
            f"{out.bad} log line(s) skipped: not JSON objects or not well-formed entries"
        )
    for name, size in pending:
        out.notes.append(
            f"{name} ends with an incomplete line ({size} bytes without a newline): left for "
            "the next read (a server still writing it), not counted"
        )
    if not parts:
        out.seconds = time.perf_counter() - t0
        return _empty(out)
    out.predictions = concat([p.predictions for p in parts])
    out.feedback = concat([p.feedback for p in parts])
    out.errors = concat([p.errors for p in parts])
    if since is not None:
        out.predictions = out.predictions.filter(pc.greater_equal(out.predictions["ts"], since))
        out.errors = out.errors.filter(pc.greater_equal(out.errors["ts"], since))
        # feedback is kept whenever it came: it labels predictions inside the window
    out.seconds = time.perf_counter() - t0
    return out


def _note_other_files(d: Path, logs: list[Path], notes: list[str]) -> None:
    """Say which files in the log directory are not read (compressed or renamed logs)."""
    kept = set(logs)
    other = sorted(
        p.name for p in d.iterdir() if p not in kept and not p.name.startswith(".") and p.is_file()
    )
    if other:
        shown = ", ".join(other[:5]) + (f" and {len(other) - 5} more" if len(other) > 5 else "")
        notes.append(
            f"{len(other)} file(s) in the log directory are not read (only *.jsonl is): {shown}; "
            "decompress or rename them into *.jsonl files to include them"
        )


def _merge(parts: list[Parsed]) -> Parsed:
    if len(parts) == 1:
        return parts[0]
    return Parsed(
        concat([p.predictions for p in parts]),
        concat([p.feedback for p in parts]),
        concat([p.errors for p in parts]),
        sum(p.lines for p in parts),
        sum(p.bad for p in parts),
        sum(p.unknown for p in parts),
    )


def _empty(out: LogColumns) -> LogColumns:
    empty = parse_bytes(b"")
    out.predictions, out.feedback, out.errors = empty.predictions, empty.feedback, empty.errors
    return out

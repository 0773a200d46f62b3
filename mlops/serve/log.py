"""The prediction log: what the service saw and answered, for monitoring (drift, decay).

Format (documented in docs/architecture.md, "Prediction log"): JSON Lines files in one directory
(`<target>/predictions/` for an environment), named `<UTC start time>-<writer id>.jsonl` so that
sorting names sorts by time. Each line is one object:

    {"kind": "prediction", "ts": 1717000000.123, "request_id": "…", "model": "…", "version": "…",
     "endpoint": "invocations", "n": 2, "inputs": {"feature": [v1, v2], ...},
     "predictions": [...], "classes": [...], "probabilities": [[...], [...]], "latency_ms": 0.41}
    {"kind": "feedback", "ts": …, "request_id": "…", "labels": [...]}
    {"kind": "error", "ts": …, "request_id": "…", "endpoint": "predict", "status": 422,
     "error": "invalid_input", "version": "…", "latency_ms": 0.2, "fields": {"island": 1}}

Writes happen in a background thread, in batches (one `write` per batch), never on the request's
path; when the writer falls behind, entries beyond `max_pending_rows` are dropped and counted.
A file is closed and a new one started past `max_file_bytes`; the oldest closed files are deleted
while the directory holds more than `max_total_bytes`. A writer holds an `flock` on its open file,
so several workers share a directory without deleting each other's open file. Readers skip a last
line that is not yet complete.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlops.bundle.inputs import dumps

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: files are not locked, pruning trusts names
    fcntl = None  # type: ignore[assignment]

SUFFIX = ".jsonl"


@dataclass
class LogLimits:
    """Bounds of the prediction log."""

    max_file_bytes: int = 32 * 1024 * 1024
    max_total_bytes: int = 512 * 1024 * 1024
    max_pending_rows: int = 200_000
    flush_seconds: float = 0.25
    flush_entries: int = 256
    max_file_seconds: float | None = None  # also close a file this old (when it is shipped)


class PredictionLog:
    """A bounded, rotating JSON Lines log written by a background thread."""

    def __init__(
        self,
        directory: Path | str,
        limits: LogLimits | None = None,
        on_closed: Callable[[Path], None] | None = None,
    ) -> None:
        self.dir = Path(directory)
        self.limits = limits or LogLimits()
        self.on_closed = on_closed  # gets each file once it is complete (the segment shipper)
        self._opened = 0.0
        self.writer_id = f"{os.getpid()}{secrets.token_hex(2)}"
        self._queue: deque[tuple[int, dict[str, Any]]] = deque()
        self._added_rows = 0  # changed by the producer only
        self._flushed_rows = 0  # changed by the writer only: no lock needed
        self._wake = threading.Event()
        self._stop = False
        self._thread: threading.Thread | None = None
        self._fd: int | None = None
        self._path: Path | None = None
        self._size = 0
        self.written = 0
        self.dropped = 0
        self.errors = 0
        self.last_error = ""

    # ---- the hot path: O(1), no I/O ------------------------------------------------------

    def add(self, entry: dict[str, Any], rows: int = 1) -> bool:
        """Queue an entry; False (and counted) when the queue is full."""
        if self._added_rows - self._flushed_rows + rows > self.limits.max_pending_rows:
            self.dropped += 1
            return False
        self._added_rows += rows
        self._queue.append((rows, entry))
        if len(self._queue) >= self.limits.flush_entries:
            self._wake.set()
        return True

    # ---- the writer thread ---------------------------------------------------------------

    def start(self) -> None:
        """Create the directory, prune it, and start the writer thread."""
        self.dir.mkdir(parents=True, exist_ok=True)
        self.prune()
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="mlops-prediction-log", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Write what is queued, then stop the thread and close the file."""
        self._stop = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
        self.flush()
        self._close_file()

    def _run(self) -> None:
        while not self._stop:
            self._wake.wait(self.limits.flush_seconds)
            self._wake.clear()
            self.flush()
            age = self.limits.max_file_seconds
            if age is not None and self._fd is not None and time.time() - self._opened >= age:
                self._close_file()

    def flush(self) -> None:
        """Write every queued entry now (called by the thread; safe to call at shutdown)."""
        lines = []
        rows = 0
        queue = self._queue
        while queue:
            try:
                n, entry = queue.popleft()
            except IndexError:
                break
            rows += n
            try:
                lines.append(dumps(entry))
            except (TypeError, ValueError) as exc:
                self.errors += 1
                self.last_error = f"unserialisable entry: {exc}"
            if len(lines) % 32 == 0:
                time.sleep(0)  # let the event loop have the GIL between small slices of work
        self._flushed_rows += rows
        if not lines:
            return
        data = b"\n".join(lines) + b"\n"
        try:
            self._write(data)
            self.written += len(lines)
        except OSError as exc:
            self.errors += 1
            self.last_error = str(exc)
            self._close_file()

    def _write(self, data: bytes) -> None:
        if self._fd is None:
            self._open_file()
        assert self._fd is not None
        view = memoryview(data)
        while view:
            n = os.write(self._fd, view)
            view = view[n:]
        self._size += len(data)
        if self._size >= self.limits.max_file_bytes:
            self._close_file()
            self.prune()

    def _open_file(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + f"{time.time() % 1:.6f}"[1:]
        path = self.dir / f"{stamp}-{self.writer_id}{SUFFIX}"
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self._fd, self._path, self._size = fd, path, 0
        self._opened = time.time()

    def _close_file(self) -> None:
        closed = self._path
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)  # also releases the flock
        self._fd, self._path, self._size = None, None, 0
        if closed is not None and self.on_closed is not None:
            self.on_closed(closed)

    def prune(self) -> list[Path]:
        """Delete the oldest closed files while the directory exceeds `max_total_bytes`."""
        files = log_files(self.dir)
        sizes = {}
        for f in files:
            with contextlib.suppress(OSError):
                sizes[f] = f.stat().st_size
        total = sum(sizes.values())
        removed = []
        for f in files:
            if total <= self.limits.max_total_bytes:
                break
            if f == self._path or f not in sizes or _in_use(f):
                continue
            with contextlib.suppress(OSError):
                f.unlink()
                total -= sizes[f]
                removed.append(f)
        return removed


def _in_use(path: Path) -> bool:
    """Whether a writer holds the file open (its flock)."""
    if fcntl is None:  # pragma: no cover
        return False
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)  # releases the probe's lock if it got one
    return False


def log_files(directory: Path | str) -> list[Path]:
    """The log's files, oldest first."""
    d = Path(directory)
    if not d.is_dir():
        return []
    return sorted(p for p in d.iterdir() if p.name.endswith(SUFFIX) and p.is_file())


def read_log(directory: Path | str, since: float | None = None) -> Iterator[dict[str, Any]]:
    """Every complete entry (predictions and feedback), oldest file first.

    `since` keeps entries with `ts >= since`. A trailing partial line (being written) is skipped,
    and so is any line that is not a JSON object.
    """
    for path in log_files(directory):
        try:
            data = path.read_bytes()
        except OSError:
            continue
        end = data.rfind(b"\n")
        for line in data[: end + 1].splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if isinstance(entry, dict) and (since is None or entry.get("ts", 0) >= since):
                yield entry


def iter_rows(entries: Iterator[dict[str, Any]] | list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """One dict per predicted row: features, `prediction`, `version`, `ts`, `request_id`, `row`,
    and `label` when feedback gave one (the latest feedback for a request wins)."""
    predictions = []
    labels: dict[Any, list[Any]] = {}  # by request id (None when an entry had none)
    for e in entries:
        if e.get("kind") == "feedback" and isinstance(e.get("labels"), list):
            labels[e.get("request_id")] = e["labels"]
        elif e.get("kind") == "prediction":
            predictions.append(e)
    for e in predictions:
        inputs = e.get("inputs") or {}
        preds = e.get("predictions") or []
        given = labels.get(e.get("request_id"))
        for i in range(int(e.get("n", len(preds)))):
            row = {k: (v[i] if i < len(v) else None) for k, v in inputs.items()}
            row.update(
                prediction=preds[i] if i < len(preds) else None,
                version=e.get("version"),
                ts=e.get("ts"),
                request_id=e.get("request_id"),
                row=i,
            )
            if given is not None and i < len(given):
                row["label"] = given[i]
            yield row

"""Shipping the prediction log to storage as columnar segments, per host and time.

A server whose log goes to storage (`mlops serve --log-url URL`, or a target in object storage)
still writes its JSON Lines log first, to a local spool directory (`mlops.serve.log`: the
request path never waits for the network, and what a crash leaves behind is shipped on the next
start). Each spool file, once closed (by size, by age — `max_file_seconds` — or at shutdown), is
converted to Arrow IPC files and uploaded, then deleted from the spool:

    <url>/logs/<host>/<spool file stem>.predictions.arrow   one row per predicted row
    <url>/logs/<host>/<spool file stem>.errors.arrow        refused and failed requests
    <url>/feedback/<host>/<spool file stem>.feedback.arrow  labels sent to /feedback

(format in docs/architecture.md, "Prediction log segments"). The stem is the spool file's
`<UTC start>-<writer id>`, so sorting names sorts by time and a segment shipped twice (a crash
between upload and delete) replaces itself instead of counting twice. A local upload is written
to a temporary name and renamed; an object store makes each object appear whole.

On a clean stop (SIGTERM: uvicorn runs the lifespan shutdown), the log writes what is queued,
closes its file, and the shipper uploads every closed file before the process exits.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import socket
import threading
import time
from pathlib import Path
from typing import Any

from mlops.errors import UsageError
from mlops.serve.log import SUFFIX, _in_use, log_files

HOST_ENV = "MLOPS_HOST_ID"
HOST_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
LOGS = "logs"
FEEDBACK = "feedback"
SEGMENT_FORMAT = 1
KINDS = {"predictions": LOGS, "errors": LOGS, "feedback": FEEDBACK}


def host_id(given: str | None = None) -> str:
    """The name this host's segments go under: `given`, else $MLOPS_HOST_ID, else the host name
    (a pod's name on Kubernetes)."""
    name = given or os.environ.get(HOST_ENV) or socket.gethostname().split(".")[0]
    if not HOST_PATTERN.match(name or ""):
        raise UsageError(
            f"invalid host id {name!r} for the prediction log segments",
            f"Give --host-id (or ${HOST_ENV}) of letters, digits, '.', '_' and '-' "
            "(at most 63, starting with a letter or digit).",
        )
    return name


def segment_paths(url: str, host: str, stem: str) -> dict[str, str]:
    """Where the segments of spool file `stem` go under `url`, by table."""
    base = url.rstrip("/")
    return {kind: f"{base}/{top}/{host}/{stem}.{kind}.arrow" for kind, top in KINDS.items()}


def _ipc_bytes(table: Any, meta: dict[str, Any]) -> bytes:
    import pyarrow as pa

    table = table.unify_dictionaries().combine_chunks()
    schema = table.schema.with_metadata({b"mlops": json.dumps(meta).encode()})
    sink = pa.BufferOutputStream()
    options = pa.ipc.IpcWriteOptions(compression="lz4")
    with pa.ipc.new_file(sink, schema, options=options) as writer:
        writer.write_table(table.cast(schema))
    return sink.getvalue().to_pybytes()


def convert(path: Path, host: str) -> dict[str, bytes]:
    """The segments (Arrow IPC file bytes, by table) of one closed spool file."""
    from mlops.serve.logjson import parse_bytes  # the one JSON-lines parser (Arrow's reader)

    data = path.read_bytes()
    end = data.rfind(b"\n")
    parsed = parse_bytes(data[: end + 1])
    meta = {
        "format": SEGMENT_FORMAT,
        "host": host,
        "source": path.name,
        "lines": parsed.lines,
        "bad": parsed.bad,
        "unknown": parsed.unknown,
        "ts_range": list(parsed.ts_range),
    }
    out = {"predictions": _ipc_bytes(parsed.predictions, meta)}  # carries the counts
    for kind in ("errors", "feedback"):
        table = getattr(parsed, kind)
        if table.num_rows:
            out[kind] = _ipc_bytes(table, meta)
    return out


def _put(fs: Any, path: str, data: bytes) -> None:
    """Write one object whole: a temporary name and a rename on a local disk."""
    if "file" in _protocols(fs):
        from mlops.config.yamlfile import atomic_write_bytes

        atomic_write_bytes(Path(path), data)
        return
    fs.pipe_file(path, data)


def _protocols(fs: Any) -> tuple[str, ...]:
    p = fs.protocol
    return (p,) if isinstance(p, str) else tuple(p)


class Shipper:
    """Uploads closed spool files as segments, in a background thread."""

    def __init__(self, spool: Path | str, url: str, host: str) -> None:
        import fsspec

        self.spool = Path(spool)
        self.url = url.rstrip("/")
        self.host = host
        self.fs, self.root = fsspec.core.url_to_fs(self.url)  # root: the path without scheme
        self._queue: queue.Queue[Path | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()  # one shipment at a time (the thread or close())
        self.shipped = 0
        self.rows = 0
        self.errors = 0
        self.last_error = ""

    def start(self) -> None:
        """Queue what a previous run left in the spool, and start the upload thread."""
        for path in log_files(self.spool):
            if not _in_use(path):  # another worker's open file is its own to ship
                self._queue.put(path)
        self._thread = threading.Thread(target=self._run, name="mlops-log-shipper", daemon=True)
        self._thread.start()

    def closed(self, path: Path) -> None:
        """A spool file is complete (called by the log writer): ship it."""
        self._queue.put(path)

    def _run(self) -> None:
        while True:
            path = self._queue.get()
            if path is None:
                return
            self.ship(path, retry=True)

    def ship(self, path: Path, retry: bool = False) -> bool:
        """Convert and upload one spool file, then delete it; False (and kept) on failure."""
        with self._lock:
            if not path.is_file():
                return True  # shipped already (another worker's recovery, or close())
            try:
                segments = convert(path, self.host)
            except FileNotFoundError:
                return True  # another worker shipped and deleted it meanwhile
            except Exception as exc:
                self.errors += 1
                self.last_error = f"cannot convert {path.name}: {type(exc).__name__}: {exc}"
                return False
            try:
                targets = segment_paths(self.root, self.host, path.name[: -len(SUFFIX)])
                for kind, data in segments.items():
                    _put(self.fs, targets[kind], data)
            except Exception as exc:  # storage down, credentials, a full disk: keep the file
                self.errors += 1
                self.last_error = f"{type(exc).__name__}: {str(exc)[:200]}"
                if retry:  # again in 5 s (and at close, and at the next start)
                    timer = threading.Timer(5.0, self._queue.put, (path,))
                    timer.daemon = True
                    timer.start()
                return False
            with contextlib.suppress(OSError):
                path.unlink()
            self.shipped += 1
            return True

    def close(self, timeout: float = 60.0) -> None:
        """Stop the thread, then ship every closed spool file left (the shutdown path)."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=timeout)
            self._thread = None
        deadline = time.time() + timeout
        for path in log_files(self.spool):
            if time.time() > deadline:
                break
            if not _in_use(path):
                self.ship(path)

"""Metrics shared by every worker on a host: prometheus_client's multiprocess mode.

With `mlops serve --workers N`, a scrape reaches one worker. So that any scrape reports the
host's totals, each worker also writes every change of its metrics (`mlops.serve.metrics`) to
memory-mapped files in a directory shared by the workers (`PROMETHEUS_MULTIPROC_DIR`, one file
per process and metric kind), and `/metrics` renders the sum over all of them with
prometheus_client's `MultiProcessCollector`.

How each family is combined across workers:
- counters and histograms: summed (a worker that exited still counts: totals never go back);
- `mlops_requests_in_flight`: summed over live workers;
- other gauges (model info, load time, ...): the highest value of a live worker, so a version
  shows 1 in `mlops_model_info` while any worker serves it.

"Live" is kept true: a worker's live gauges are dropped when it exits cleanly, and at the next
scrape (or the next worker start) when it died without a word (SIGKILL, OOM; uvicorn starts
a replacement).

The local dicts stay the source of the single-worker path: forwarding only happens when the
directory is set (`enabled()`), and costs one memory-mapped write per change.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from mlops.serve.metrics import Family, Metrics

ENV = "PROMETHEUS_MULTIPROC_DIR"
OWNED = "MLOPS_METRICS_DIR_OWNED"  # set when `mlops serve` made the directory (and removes it)
SUM_GAUGES = {"mlops_requests_in_flight"}


def enabled() -> bool:
    """Whether this process shares its metrics with the other workers."""
    path = os.environ.get(ENV)
    return bool(path) and Path(path).is_dir()


def prepare_dir() -> tuple[str, bool]:
    """The shared directory for a multi-worker server: `PROMETHEUS_MULTIPROC_DIR` when the
    user set one (its old files are deleted: they would add a previous run's counts), else a
    new temporary directory. Returns (path, created here)."""
    given = os.environ.get(ENV)
    if given:
        path = Path(given)
        path.mkdir(parents=True, exist_ok=True)
        for f in path.glob("*.db"):
            f.unlink(missing_ok=True)
        return str(path), False
    return tempfile.mkdtemp(prefix="mlops-metrics-"), True


def remove_dir(path: str) -> None:
    """Remove a directory made by `prepare_dir`."""
    shutil.rmtree(path, ignore_errors=True)


class _Forward:
    """Forwards one family's changes to a prometheus_client metric (made on first use, so a
    histogram gets the buckets the family has by then)."""

    def __init__(self, family: Family) -> None:
        self.family = family
        self.metric: Any = None
        self.last: dict[tuple, float] = {}  # counter values set absolutely: forward the change
        self.children: dict[tuple, Any] = {}  # label values -> the metric's child (cached)

    def _get(self) -> Any:
        if self.metric is None:
            from prometheus_client import Counter, Gauge, Histogram

            f = self.family
            labels = list(f.labels)
            if f.kind == "counter":
                name = f.name[: -len("_total")] if f.name.endswith("_total") else f.name
                self.metric = Counter(name, f.help, labels, registry=None)
            elif f.kind == "histogram":
                self.metric = Histogram(f.name, f.help, labels, buckets=f.buckets, registry=None)
            else:
                mode = "livesum" if f.name in SUM_GAUGES else "livemax"
                self.metric = Gauge(f.name, f.help, labels, registry=None, multiprocess_mode=mode)
        return self.metric

    def _series(self, values: tuple) -> Any:
        child = self.children.get(values)
        if child is None:
            m = self._get()
            child = self.children[values] = m.labels(*map(str, values)) if values else m
        return child

    def inc(self, values: tuple, by: float) -> None:
        s = self._series(values)
        if self.family.kind == "counter":
            if by > 0:
                s.inc(by)
        else:
            s.inc(by)

    def set(self, values: tuple, value: float) -> None:
        if self.family.kind == "counter":  # a count kept elsewhere (the log writer's)
            delta = value - self.last.get(values, 0)
            self.last[values] = value
            if delta > 0:
                self._series(values).inc(delta)
            return
        self._series(values).set(value)

    def observe(self, values: tuple, v: float) -> None:
        self._series(values).observe(v)


def share(metrics: Metrics) -> None:
    """Forward every family's changes to the shared directory (call once per worker)."""
    forget_dead_workers()  # a worker that replaces a crashed one
    for f in metrics.families:
        f.backend = _Forward(f)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # another user's: not ours to judge
    try:  # killed but not yet reaped by the supervisor: dead all the same
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[-1].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        return True


def forget_dead_workers(path: str | None = None) -> list[int]:
    """Drop the live gauges of workers that died without a clean exit (SIGKILL, OOM): uvicorn
    restarts them, but their `gauge_live*_<pid>.db` files would keep counting (a request in
    flight when the worker died would stay in flight forever). Their counters stay in the
    totals. Returns the pids dropped."""
    directory = Path(path or os.environ.get(ENV) or "")
    if not str(directory) or not directory.is_dir():
        return []
    pids = set()
    for f in directory.glob("gauge_live*_*.db"):
        pid = f.stem.rsplit("_", 1)[-1]
        if pid.isdigit():
            pids.add(int(pid))
    dead = sorted(p for p in pids if p != os.getpid() and not _alive(p))
    if dead:
        from prometheus_client import multiprocess

        for pid in dead:
            multiprocess.mark_process_dead(pid, str(directory))
    return dead


def render() -> bytes:
    """The host's totals over every worker's files, in the Prometheus text format."""
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.multiprocess import MultiProcessCollector

    forget_dead_workers()  # one listing of the directory per scrape
    registry = CollectorRegistry()
    MultiProcessCollector(registry)
    return generate_latest(registry)


def worker_exited(pid: int) -> None:
    """Drop an exited worker's live gauges (its counters keep counting in the totals)."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(pid)

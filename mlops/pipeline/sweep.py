"""The experiments of a sweep in parallel (`mlops exp run -S train.C=0.1,1,10 --jobs N`).

Like `dvc exp run --run-all --jobs N`: each experiment runs as it would alone (its own scratch
work tree, its own DVC repository object, its own run record), in one of N worker processes
forked from the command once DVC is imported, each taking one experiment at a time. Separate
processes because DVC is not safe to run twice in one process: it changes the working
directory, and stage output is captured by redirecting file descriptors 1 and 2 of the process.
The stages of every worker go to the same warm runner (it forks one child per stage, several at
once).

Order: an experiment is handed to a worker only once the previous one has created its run
record (its first stage started, or it ended), so records start in sweep order, as in a
sequential sweep, and the results come back in sweep order whatever order they finish in.

Failures: an experiment that fails (a stage, a gate) is recorded and returned like the others;
one that raises (a setting its params refuse) stops the sweep from starting more, lets the
running ones finish, and is raised, as sequentially. Ctrl-C reaches every process of the
foreground group: the stages stop, each experiment is recorded as interrupted and removes its
scratch tree, the command waits for them (ignoring further Ctrl-C), removes any scratch tree a
worker could not, starts no other experiment, and returns what ran (exit 130, as a sequential
sweep stops at its interrupted experiment).
"""

from __future__ import annotations

import contextlib
import os
import signal
import traceback
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from mlops.errors import Interrupted, MlopsError

MAX_DEFAULT_JOBS = 4
WARMING_POLL = 0.25  # seconds between two questions to a runner still importing


def default_jobs(experiments: int) -> int:
    """Workers when `--jobs` is not given: one per CPU this process may use, at most
    `MAX_DEFAULT_JOBS` (each worker holds DVC and runs its stages; memory grows with each) and at
    most one per experiment."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(experiments, cpus or 1, MAX_DEFAULT_JOBS))


@dataclass
class _Worker:
    pid: int
    conn: Any  # multiprocessing.connection.Connection
    index: int | None = None  # the experiment it runs
    alive: bool = True


def _serve(conn: Any, run_one: Callable[..., Any]) -> None:
    """A worker's loop: run each experiment the command sends, until it sends None or closes."""
    while True:
        try:
            task = conn.recv()
        except (EOFError, OSError, KeyboardInterrupt):
            return
        if task is None:
            return
        index, overrides = task

        def on_event(ev: Any, index: int = index) -> None:
            conn.send(("event", index, ev))

        try:
            run = run_one(overrides, on_event)
        except BaseException as exc:
            conn.send(("raised", index, _portable(exc)))
            if isinstance(exc, KeyboardInterrupt):
                return
            continue
        conn.send(("done", index, run))


def _portable(exc: BaseException) -> BaseException:
    """`exc` if it survives pickling, else an `MlopsError` with its message and exit code."""
    import pickle

    try:
        pickle.loads(pickle.dumps(exc))  # noqa: S301 (our own object, in this process)
        return exc
    except Exception:
        message = str(exc) or type(exc).__name__
        if not isinstance(exc, MlopsError):
            message += "\n" + "".join(traceback.format_exception(exc))[-2000:]
        out = MlopsError(message, getattr(exc, "hint", None))
        out.exit_code = getattr(exc, "exit_code", out.exit_code)
        return out


def _spawn(run_one: Callable[..., Any]) -> _Worker:
    from multiprocessing.connection import Pipe

    here, there = Pipe()
    pid = os.fork()
    if pid == 0:  # the worker: never returns
        code = 0
        try:
            here.close()
            _serve(there, run_one)
        except BaseException:
            code = 1
        finally:
            with contextlib.suppress(BaseException):
                there.close()
            os._exit(code)
    there.close()
    return _Worker(pid, here)


@contextlib.contextmanager
def _no_ctrl_c() -> Iterator[None]:
    """Ignore SIGINT in this process for the block (the workers are cleaning up)."""
    try:
        old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    except ValueError:  # not the main thread: signals are not ours to change
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)


def _stop_workers(workers: list[_Worker]) -> None:
    for w in workers:
        with contextlib.suppress(OSError, ValueError):
            w.conn.send(None)
        with contextlib.suppress(OSError):
            w.conn.close()
    for w in workers:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(w.pid, 0)


class _Sweep:
    """The command's side: hands experiments to idle workers, collects what they send."""

    def __init__(
        self,
        combos: list[dict[str, Any]],
        workers: list[_Worker],
        on_start: Callable[[dict[str, Any]], None] | None,
        on_finish: Callable[[Any], None] | None,
        warming: Callable[[], bool] | None,
    ) -> None:
        self.combos, self.workers = combos, workers
        self.on_start, self.on_finish, self.warming = on_start, on_finish, warming
        self.pending = deque(enumerate(combos))
        self.results: dict[int, Any] = {}
        self.raised: dict[int, BaseException] = {}
        self.gate: int | None = None  # whose run record must exist before the next starts
        self.stop = self.interrupted = self.finished = False

    def step(self) -> None:
        """Start one experiment, or wait for what the workers send and handle it."""
        busy = {w.conn: w for w in self.workers if w.index is not None}
        idle = [w for w in self.workers if w.index is None and w.alive]
        more = bool(self.pending) and not self.stop
        if self.warming is not None and more and busy and not self.warming():
            self.warming = None  # warm once: never asked again
        if more and self.gate is None and idle and (self.warming is None or not busy):
            index, overrides = self.pending.popleft()
            if self.on_start:
                self.on_start(overrides)
            idle[0].index = self.gate = index
            idle[0].conn.send((index, overrides))
            return
        if not busy:
            self.finished = True
            return
        from multiprocessing.connection import wait

        for conn in wait(list(busy), None if self.warming is None else WARMING_POLL):
            self._receive(busy[conn])

    def _receive(self, w: _Worker) -> None:
        index = w.index
        assert index is not None
        try:
            kind, _, payload = w.conn.recv()
        except (EOFError, OSError):
            kind, payload = "died", None
        if self.gate == index:
            self.gate = None
        if kind == "event":
            return
        w.index = None
        if kind == "done":
            self.results[index] = payload
            if self.on_finish:
                self.on_finish(payload)
            if isinstance(getattr(payload.result, "error", None), Interrupted):
                self.stop = self.interrupted = True
            return
        self.stop = True
        if kind == "raised":
            self.raised[index] = payload
            self.interrupted = self.interrupted or isinstance(payload, KeyboardInterrupt)
            return
        w.alive = False
        self.raised[index] = MlopsError(
            f"the worker process running experiment {self.combos[index]} died",
            "Its scratch tree was removed; run that experiment again "
            "(`--jobs 1` runs one at a time).",
        )

    def outcome(self) -> list[Any]:
        """The results in sweep order; raises as a sequential sweep would have."""
        if self.interrupted:
            done = [self.results[i] for i in sorted(self.results)]
            if any(isinstance(getattr(r.result, "error", None), Interrupted) for r in done):
                return done  # as a sequential sweep: what ran, the interrupted one last
            raise Interrupted(
                f"interrupted after {len(done)} of {len(self.combos)} experiments",
                "The finished ones are recorded (`mlops runs list --where 'kind == exp'`); no "
                "scratch tree or worker process is left.",
            )
        if self.raised:
            raise self.raised[min(self.raised)]
        return [self.results[i] for i in range(len(self.combos))]


def run_parallel(
    combos: list[dict[str, Any]],
    run_one: Callable[[dict[str, Any], Callable[[Any], None] | None], Any],
    *,
    jobs: int,
    cleanup: Callable[[], object],
    on_start: Callable[[dict[str, Any]], None] | None = None,
    on_finish: Callable[[Any], None] | None = None,
    warming: Callable[[], bool] | None = None,
) -> list[Any]:
    """`run_one(overrides, on_event)` for every combination, `jobs` at a time in forked
    workers; the results in the order of `combos`. `cleanup()` runs last, after every worker
    exited (it removes scratch trees a killed worker left).

    `warming()`: True while the warm runner is still importing; one experiment at a time
    until then (a stage forked mid-import imports the rest itself: two at once would import
    the same modules three times over, on the same cores)."""
    old_handler = signal.getsignal(signal.SIGINT)
    workers: list[_Worker] = []
    try:
        workers += [_spawn(run_one) for _ in range(max(1, min(jobs, len(combos))))]
        sweep = _Sweep(combos, workers, on_start, on_finish, warming)
        while not sweep.finished:
            try:
                sweep.step()
            except KeyboardInterrupt:  # the workers got it too: let them finish and clean up
                sweep.stop = sweep.interrupted = True
                with contextlib.suppress(ValueError):
                    signal.signal(signal.SIGINT, signal.SIG_IGN)  # restored below
    finally:
        with _no_ctrl_c():
            _stop_workers(workers)
            cleanup()
        with contextlib.suppress(ValueError, TypeError):
            signal.signal(signal.SIGINT, old_handler)
    return sweep.outcome()

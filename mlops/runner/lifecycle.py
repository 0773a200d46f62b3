"""Start, stop and ask a repository's runner; the session `mlops run` and `mlops exp run` open.

A session starts a runner owned by the calling process (it exits when that process does, even
killed) unless one already listens for the repository (kept by `mlops runner start`, or another
command's), and stops the runner it started when the command ends.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlops.errors import GitStateError, MlopsError
from mlops.handoff import OFF_ENV
from mlops.handoff.address import git_common_dir, socket_path
from mlops.handoff.client import request

READY_SECONDS = 20.0  # binding happens before any heavy import: this is a generous bound
_EARLY: list[RunnerInfo] = []  # started by `start_early`, for the command's session to take


@dataclass
class RunnerInfo:
    """A listening runner, as `mlops runner status` shows it."""

    common: str
    socket: str
    pid: int
    started: bool = False  # started by this call
    status: dict[str, Any] | None = None
    process: subprocess.Popen | None = None

    def to_dict(self) -> dict[str, Any]:
        out = dict(self.status or {})
        out.update(running=True, common=self.common, socket=self.socket, pid=self.pid)
        return out


def _common(root: Path | str) -> Path:
    common = git_common_dir(root)
    if common is None:
        raise GitStateError(
            f"{Path(root).resolve()} is not inside a git repository",
            "The warm runner serves one repository; run this inside one (`git init`).",
        )
    return common


def status(root: Path | str = ".") -> RunnerInfo | None:
    """The runner listening for the repository at `root`, or None."""
    common = _common(root)
    path = socket_path(common)
    reply = request(path, {"op": "status"}, timeout=5.0) if path.exists() else None
    if reply is None or reply.get("common") != str(common):
        return None
    return RunnerInfo(str(common), str(path), int(reply["pid"]), status=reply)


def log_path(common: Path) -> Path:
    """The runner's own log (start, preload time, one line per stage): in the repository's git
    common directory, so it goes with the repository and leaves nothing behind in /tmp."""
    return Path(common) / "mlops-runner.log"


def start(
    root: Path | str = ".", *, owner: int | None = None, idle: float = 0.0, wait: bool = True
) -> RunnerInfo:
    """Start a runner for the repository at `root` (or return the one already listening).

    `owner`: a pid whose exit stops the runner; `idle`: seconds without work after which it
    stops (0: never). The socket is bound and listening here, before the runner process starts:
    a stage that connects early waits in the queue while the runner starts (and then imports,
    serving between imports). `wait`: return only once the runner answers; otherwise at once.
    """
    from mlops.runner.server import bind

    common = _common(root)
    running = status(root)
    if running is not None:
        return running
    path = socket_path(common)
    try:
        listener = bind(path)
    except OSError:  # lost a race with another command's runner: use that one
        running = status(root)
        if running is not None:
            return running
        raise
    args = [sys.executable, "-m", "mlops.runner", str(common), str(path), "--idle", str(idle)]
    args += ["--fd", str(listener.fileno())]
    if owner:
        args += ["--owner", str(owner)]
    try:
        with open(log_path(common), "ab") as log:
            proc = subprocess.Popen(
                args,
                cwd=path.parent,  # sys.path[0] of `-m`: the private directory of the sockets
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C reaches the stages through their clients only
                close_fds=True,
                pass_fds=(listener.fileno(),),
            )
    except OSError:
        path.unlink(missing_ok=True)
        raise
    finally:
        listener.close()  # the runner holds it now
    info = RunnerInfo(str(common), str(path), proc.pid, True, None, proc)
    if not wait:
        return info
    deadline = time.monotonic() + READY_SECONDS
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise MlopsError(
                f"the warm runner exited at start (code {proc.returncode})",
                f"See its log: {log_path(common)}. `MLOPS_RUNNER=0` runs stages without it.",
            )
        reply = request(path, {"op": "status"}, timeout=1.0)
        if reply is not None and reply.get("pid") == proc.pid:
            info.status = reply
            return info
        time.sleep(0.02)
    stop_process(proc)
    raise MlopsError(
        "the warm runner did not start listening in time",
        f"See its log: {log_path(common)}. `MLOPS_RUNNER=0` runs stages without it.",
    )


def stop(root: Path | str = ".", timeout: float = 30.0) -> RunnerInfo | None:
    """Stop the repository's runner (it lets running stages finish); None when none ran."""
    info = status(root)
    if info is None:
        return None
    request(Path(info.socket), {"op": "stop"})
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _alive(info.pid):
        time.sleep(0.05)
    return info


def stop_process(proc: subprocess.Popen, timeout: float = 30.0) -> None:
    """Stop a runner this process started and reap it."""
    if proc.poll() is None:
        proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie of ours counts as gone
    with contextlib.suppress(OSError), open(f"/proc/{pid}/stat", encoding="ascii") as f:
        return f.read().rsplit(")", 1)[-1].split()[0] != "Z"
    return True


def start_early(root: Path | str = ".") -> None:
    """Start the runner of `mlops run --force` first thing, before the CLI is imported
    (`mlops.entry`), so that its imports overlap the command's own start-up too. The command's
    `session` takes it over, or stops it when it decides against a runner; a command that
    ends before its session (a usage error) stops it at exit. Never fails."""
    if os.environ.get(OFF_ENV) == "0":
        return
    with contextlib.suppress(Exception):
        from mlops.runner.server import dask_engine

        if not dask_engine(Path(root)):
            _EARLY.append(start(root, owner=os.getpid(), wait=False))
            import atexit

            atexit.register(_stop_early)


def _stop_early() -> None:
    while _EARLY:
        info = _EARLY.pop()
        if info.process is not None:
            stop_process(info.process)


@contextlib.contextmanager
def session(
    root: Path | str = ".",
    *,
    enabled: bool = True,
    targets: list[str] | None = None,
    force: bool = True,
) -> Iterator[RunnerInfo | None]:
    """A runner for the duration of a command; never fails the command (stages then run
    without it). Disabled by `enabled=False`, `MLOPS_RUNNER=0` or `engine: dask` in
    pipeline.yaml (its stages run as before). With `force=False` it is
    started only when at least two built-in stages of `targets` will run (DVC's status,
    `mlops.runner.plan`): for one stage a runner costs more than it saves."""
    info = _EARLY.pop() if _EARLY else None  # started by `start_early`
    if enabled and os.environ.get(OFF_ENV) != "0" and _worth(root, targets, force):
        if info is None:
            with contextlib.suppress(MlopsError, OSError):
                info = start(root, owner=os.getpid(), wait=False)
    elif info is not None:
        if info.process is not None:
            stop_process(info.process)
        info = None
    try:
        yield info
    finally:
        if info is not None and info.process is not None:
            stop_process(info.process)


def _worth(root: Path | str, targets: list[str] | None, force: bool) -> bool:
    from mlops.runner.plan import worth_a_runner
    from mlops.runner.server import dask_engine

    if dask_engine(Path(root)):  # the runner would decline every stage
        return False
    return force or worth_a_runner(root, targets, force=False)

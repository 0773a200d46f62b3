"""One writer at a time: a lock per repository (`.mlops/lock`) and per deployment target.

Two `mlops run` in one repository used to race inside DVC: the loser of DVC's own lock restored
its old `dvc.lock` and checked outputs out underneath the winner. Now every command that writes
the workspace or the registry (`run`, `compile`, `commit`, `exp apply`, `register`, `promote`,
`deprecate`, `deregister`) first takes the repository's lock, and `deploy` the target's. The
lock is an `flock` on a file, so the kernel releases it when its process exits, however it
exits: there are no stale locks to clean up. The holder writes who it is into the file (pid,
command, since when, host), and the second command waits up to `MLOPS_LOCK_WAIT` seconds
(default 10) with a message, then stops with exit 5 naming the holder. It never touches the
workspace before it holds the lock, so nothing is restored underneath a winner.

The lock is re-entrant within a process (`mlops monitor` retraining runs, commits and
registers under one lock).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import inspect
import json
import os
import socket
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from mlops.adapters.secrets import mask
from mlops.errors import GitStateError, MlopsError

WAIT_ENV = "MLOPS_LOCK_WAIT"
DEFAULT_WAIT = 10.0
REPO_LOCK = Path(".mlops/lock")
_POLL = 0.1

_held: dict[str, int] = {}  # realpath of a lock file -> depth, for this process
_reporter: list[Callable[[str], None]] = []


def set_reporter(report: Callable[[str], None] | None) -> None:
    """Where the "waiting for ..." message goes (the CLI sets stderr; the library prints
    nothing)."""
    _reporter.clear()
    if report is not None:
        _reporter.append(report)


def wait_seconds() -> float:
    """How long a second command waits for the lock: `MLOPS_LOCK_WAIT`, default 10 s."""
    try:
        return max(0.0, float(os.environ.get(WAIT_ENV, DEFAULT_WAIT)))
    except ValueError:
        return DEFAULT_WAIT


def _command() -> str:
    argv = [os.path.basename(sys.argv[0]) if sys.argv else "python", *sys.argv[1:]]
    if argv[0] in ("__main__.py", "-c", "-m"):
        argv[0] = "mlops"
    return mask(" ".join(argv))[:200]


def holder(path: Path) -> dict[str, Any] | None:
    """Who holds (or last held) the lock at `path`, as it wrote itself in: pid, command,
    since, host; None when unreadable."""
    for _ in range(5):  # the winner writes right after it locks: give it a moment
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8") or "null")
        except (OSError, ValueError):
            data = None
        if isinstance(data, dict):
            return data
        time.sleep(0.05)
    return None


def describe(info: dict[str, Any] | None) -> str:
    """`pid 4242 (mlops run --force) on host, since 09:12:03 UTC (12 s ago)`."""
    if not info:
        return "another process (it has not said who it is yet)"
    since = info.get("since")
    ago = ""
    if isinstance(since, int | float):
        stamp = dt.datetime.fromtimestamp(since, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        ago = f", since {stamp} ({max(0, int(time.time() - since))} s ago)"
    host = f" on {info['host']}" if info.get("host") else ""
    return f"pid {info.get('pid', '?')} ({info.get('command', '?')}){host}{ago}"


@contextlib.contextmanager
def hold(
    path: Path,
    *,
    what: str,
    busy: type[MlopsError] = GitStateError,
    unwritable: type[MlopsError] = GitStateError,
    unwritable_hint: str = "",
    wait: float | None = None,
) -> Iterator[None]:
    """Hold the exclusive lock at `path` for the block; re-entrant within this process.

    Another holder: wait up to `wait` seconds (default `wait_seconds()`), reporting once, then
    raise `busy` naming the holder. A lock file that cannot be created or opened (read-only
    directory): raise `unwritable` with `unwritable_hint`.
    """
    import fcntl

    path = Path(path)
    key = os.path.realpath(path)
    if _held.get(key):
        _held[key] += 1
        try:
            yield
        finally:
            _held[key] -= 1
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise unwritable(
            f"cannot take the lock of {what}: {path}: {exc.strerror}",
            unwritable_hint or f"Make {path.parent} writable by this user, then run again.",
        ) from None
    try:
        limit = wait_seconds() if wait is None else wait
        deadline = time.monotonic() + limit
        reported = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                info = holder(path)
                if time.monotonic() >= deadline:
                    raise busy(
                        f"{what} is locked by another mlops command: {describe(info)}",
                        f"Wait for it to finish, then run again (or set {WAIT_ENV}=SECONDS to "
                        "wait longer). The lock is released when that process exits, however "
                        "it exits.",
                    ) from None
                if not reported and _reporter:
                    _reporter[0](
                        f"waiting up to {limit:.0f} s for {what}, locked by {describe(info)}"
                    )
                reported = True
                time.sleep(_POLL)
        me = {
            "pid": os.getpid(),
            "command": _command(),
            "since": time.time(),
            "host": socket.gethostname(),
        }
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
            os.pwrite(fd, (json.dumps(me) + "\n").encode(), 0)
        _held[key] = 1
        try:
            yield
        finally:
            _held.pop(key, None)
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def repository(root: Path | str) -> contextlib.AbstractContextManager[None]:
    """The lock of the repository at `root` (`.mlops/lock`); none where there is no project
    (the command then stops on the missing pipeline.yaml, without a `.mlops/` left behind)."""
    root = Path(root).resolve()
    if not (root / "pipeline.yaml").is_file():
        return contextlib.nullcontext()
    return hold(
        root / REPO_LOCK,
        what=f"the repository {root}",
        unwritable_hint=f"mlops keeps its state in {root / '.mlops'}: make it writable by this "
        "user (`chmod -R u+w .mlops`), or run where you can write.",
    )


F = TypeVar("F", bound=Callable[..., Any])


def locked(func: F) -> F:
    """Run `func(root, ...)` holding the repository lock of its `root` argument (default ".")."""
    sig = inspect.signature(func)

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        bound = sig.bind_partial(*args, **kwargs)
        root = bound.arguments.get("root", ".")
        with repository(root):
            return func(*args, **kwargs)

    return wrapper  # type: ignore[return-value]

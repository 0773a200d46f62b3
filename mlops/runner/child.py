"""The forked child: becomes the client's stage process, then runs the stage as it would have.

Applied from the client before the stage runs: stdin/stdout/stderr (its own descriptors, passed
with SCM_RIGHTS), working directory, environment, import path, umask, resource limits (memory
among them), CPU affinity and niceness. Then the runner's state that must not leak is reset:
signal handlers, atexit handlers, the random generators' seeds. The exit status is the one
`python -m mlops.stages` would have had, including death by SIGINT after Ctrl-C.
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import os
import signal
import sys
import threading
import traceback
from typing import Any, NoReturn


def run_child(msg: dict[str, Any], fds: list[int], close: list[int]) -> NoReturn:
    """Set up the child from the request `msg` and run the stage; never returns."""
    code = 1
    try:
        _detach(close)
        _apply(msg, fds)
        code = _run(msg["argv"][1:])
    except BaseException:  # set-up failed: say so where the stage's stderr goes
        with contextlib.suppress(Exception):
            traceback.print_exc()
        code = 1
    _exit(code)


def _detach(close: list[int]) -> None:
    signal.set_wakeup_fd(-1)
    for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2):
        signal.signal(sig, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    for fd in close:
        with contextlib.suppress(OSError):
            os.close(fd)
    with contextlib.suppress(Exception):  # die with the runner (no orphan stage computing on)
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG
    atexit._clear()  # the runner's handlers are not the stage's
    gc.enable()  # the runner imports with it off (its objects are frozen: never walked here)


def _apply(msg: dict[str, Any], fds: list[int]) -> None:
    import resource

    for target, fd in enumerate(fds):
        os.dup2(fd, target, inheritable=True)
        if fd > 2:
            os.close(fd)
    os.chdir(msg["cwd"])
    os.environ.clear()
    os.environ.update(msg["env"])
    sys.path[:] = msg["path"]
    import importlib

    importlib.invalidate_caches()
    os.umask(int(msg.get("umask", 0o022)))
    for name, (soft, hard) in msg["limits"].items():
        res = getattr(resource, name)
        if resource.getrlimit(res) != (soft, hard):
            resource.setrlimit(res, (soft, hard))
    if msg.get("affinity") and hasattr(os, "sched_setaffinity"):
        with contextlib.suppress(OSError):
            os.sched_setaffinity(0, msg["affinity"])
    if isinstance(msg.get("nice"), int):
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, 0, msg["nice"])
    _streams(msg)
    sys.argv = [msg["argv"][0], *msg["argv"][1:]]
    import random

    random.seed()
    np = sys.modules.get("numpy")
    if np is not None:
        np.random.seed()  # the legacy global generator: a fresh seed, as a new process has


def _streams(msg: dict[str, Any]) -> None:
    enc = msg.get("encoding") or {}

    def writer(fd: int, which: str, line: bool) -> Any:
        encoding, errors = enc.get(which, [None, None])
        return open(
            fd,
            "w",
            buffering=1 if line else -1,
            encoding=encoding,
            errors=errors,
            closefd=False,
        )

    sys.stdin = sys.__stdin__ = open(0, closefd=False)  # type: ignore[misc]  # noqa: SIM115
    sys.stdout = sys.__stdout__ = writer(1, "stdout", os.isatty(1))  # type: ignore[misc]
    sys.stderr = sys.__stderr__ = writer(2, "stderr", True)  # type: ignore[misc]


def _run(argv: list[str]) -> int:
    from mlops.stages.__main__ import run_inprocess

    try:
        code = run_inprocess(argv)
        _join_threads()
        atexit._run_exitfuncs()
        return code
    except SystemExit as exc:
        return _exit_code(exc.code)
    except KeyboardInterrupt:
        # as Python does for an uncaught Ctrl-C: the traceback, then death by SIGINT
        traceback.print_exc()
        _flush()
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
        return 130


def _exit_code(code: Any) -> int:
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    print(code, file=sys.stderr)
    return 1


def _join_threads() -> None:
    for t in threading.enumerate():
        if t is not threading.current_thread() and not t.daemon:
            t.join()


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()


def _exit(code: int) -> NoReturn:
    _flush()
    os._exit(code)

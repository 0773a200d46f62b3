"""The thin client `python -m mlops.stages NAME` is: hand the stage to this repository's runner.

`run_via_runner` returns the stage's exit code, or None when no runner took the stage (none
listening, another user's socket, a runner that declined): the caller then runs it in-process.
Imports only the standard library; when no runner listens it costs one `stat`.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import sys
from pathlib import Path
from typing import Any

from mlops.handoff import OFF_ENV
from mlops.handoff.address import fingerprint, git_common_dir, socket_path

FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2)
PEERCRED_SIZE = 12


def connect(path: Path, timeout: float | None = None) -> socket.socket | None:
    """A connection to the runner at `path`, when one listens there and runs as this user."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(str(path))
        raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, PEERCRED_SIZE)
        if int.from_bytes(raw[4:8], sys.byteorder) != os.getuid():
            raise OSError("the runner's socket belongs to another user")
    except OSError:
        sock.close()
        return None
    return sock


def request(path: Path, msg: dict[str, Any], timeout: float = 10.0) -> dict[str, Any] | None:
    """One request, one reply (status, stop); None when no runner answers."""
    sock = connect(path, timeout)
    if sock is None:
        return None
    with sock:
        try:
            sock.sendall(json.dumps(msg).encode() + b"\n")
            return _read_line(sock)
        except OSError:
            return None


def _read_line(sock: socket.socket, buf: bytearray | None = None) -> dict[str, Any] | None:
    buf = buf if buf is not None else bytearray()
    while b"\n" not in buf:
        data = sock.recv(4096)
        if not data:
            return None
        buf += data
    line, _, rest = bytes(buf).partition(b"\n")
    buf[:] = rest
    try:
        out = json.loads(line)
    except ValueError:
        return None
    return out if isinstance(out, dict) else None


def run_via_runner(argv: list[str]) -> int | None:
    """Run the stage `argv` (after `-m mlops.stages`) in the runner; None: run it yourself."""
    if os.environ.get(OFF_ENV) == "0":
        return None
    try:
        for fd in (0, 1, 2):
            os.fstat(fd)
        common = git_common_dir(os.getcwd())
        if common is None:
            return None
        path = socket_path(common)
        if not path.exists():
            return None
    except OSError:
        return None
    sock = connect(path)
    if sock is None:
        return None
    with sock:
        return _hand_over(sock, argv, common)


def _request(argv: list[str], common: Path) -> dict[str, Any]:
    import resource

    umask = os.umask(0o022)
    os.umask(umask)
    limits = {
        name: list(resource.getrlimit(getattr(resource, name)))
        for name in dir(resource)
        if name.startswith("RLIMIT_")
    }
    return {
        "op": "run",
        "argv": [sys.argv[0], *argv],
        "cwd": os.getcwd(),
        "env": dict(os.environ),
        "path": list(sys.path),
        "umask": umask,
        "limits": limits,
        "affinity": sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "nice": os.getpriority(os.PRIO_PROCESS, 0),
        "encoding": {
            "stdout": [sys.stdout.encoding, sys.stdout.errors] if sys.stdout else None,
            "stderr": [sys.stderr.encoding, sys.stderr.errors] if sys.stderr else None,
        },
        "common": str(common),
        "fingerprint": fingerprint(),
    }


def _hand_over(sock: socket.socket, argv: list[str], common: Path) -> int | None:
    pending: list[int] = []

    def forward(signum: int, _frame: Any) -> None:
        pending.append(signum)
        with contextlib.suppress(OSError):
            sock.sendall(json.dumps({"signal": signum}).encode() + b"\n")

    saved = {sig: signal.signal(sig, forward) for sig in FORWARDED}
    try:
        try:
            payload = json.dumps(_request(argv, common)).encode() + b"\n"
            socket.send_fds(sock, [payload], [0, 1, 2])
            buf = bytearray()
            first = _read_line(sock, buf)
        except OSError:
            first = None
        if first is None or "started" not in first:
            _declined(saved, pending)
            return None
        try:
            result = _read_line(sock, buf)
        except OSError:
            result = None
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)
    if result is None:  # the runner died under the stage (which died with it)
        print("error: the warm runner stopped while it ran this stage", file=sys.stderr)
        return 1
    if "signal" in result:
        signum = int(result["signal"])
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)  # die as the stage did, so DVC sees the same status
        return 128 + signum
    return int(result.get("exit", 1))


def _declined(saved: dict[Any, Any], pending: list[int]) -> None:
    for sig, handler in saved.items():
        signal.signal(sig, handler)
    for sig in pending:  # a Ctrl-C that came while asking is not lost
        signal.raise_signal(sig)
    return None

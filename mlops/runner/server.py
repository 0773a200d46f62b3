"""The runner: import the stages' libraries once, then run each stage in a fresh fork.

One thread only, ever: a `selectors` loop over the listening socket, the clients' connections,
a self-pipe woken by SIGCHLD/SIGTERM and (when an owner is set) a pidfd of the owning `mlops`
command. Nothing in this process starts a thread pool or holds a lock while it forks: it only
imports modules (thread-pool sizes pinned first, see `pin_threads`), reads requests and forks.
Requests are served between preload steps too: a stage is forked as soon as the modules of its
kind are in (`READY` markers in `PRELOAD`), and a stage that ends during an import is answered at
once from the SIGCHLD handler, so the first stages need not wait for every import.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import selectors
import signal
import socket
import struct
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlops.handoff.address import THREAD_VARS, cpus, fingerprint
from mlops.runner import preload
from mlops.runner.preload import (
    EXTRAS_AFTER,
    PACKAGES,
    PRELOAD,
    PRELOAD_ENV,
    READY,
    TRACE_ENV,
    log,
    stamp,
)

MAX_REQUEST = 1 << 20  # bytes: a request is argv, cwd, env and limits
PEERCRED = struct.Struct("3i")  # pid, uid, gid


def pin_threads() -> None:
    """Give native thread pools an explicit size before anything loads them.

    A variable the environment sets is kept; an unset one gets the number of CPUs this process
    may use, which is what OpenBLAS and OpenMP pick by themselves (so results match a stage run
    without the runner). Clients whose environment differs run in-process (see `fingerprint`).
    """
    for name in THREAD_VARS:
        os.environ.setdefault(name, str(cpus()))


def peer_uid(sock: socket.socket) -> int:
    """The uid of the process at the other end of a Unix socket (SO_PEERCRED)."""
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, PEERCRED.size)
    return PEERCRED.unpack(raw)[1]


@dataclass
class Conn:
    sock: socket.socket
    buf: bytearray = field(default_factory=bytearray)
    fds: list[int] = field(default_factory=list)
    pid: int | None = None  # the forked stage, once started
    waiting: dict[str, Any] | None = None  # a request waiting for its stage's modules


class Runner:
    """A runner for one repository (`common`: its git common directory), listening on `path`."""

    def __init__(self, common: Path, path: Path, *, owner: int | None, idle: float) -> None:
        self.common, self.path, self.owner, self.idle = str(common), path, owner, idle
        self.fingerprint = fingerprint()  # before pin_threads: what clients must have
        self.started = time.time()
        self.last = time.monotonic()
        self.preloaded = False
        self.ready: set[str] = set()  # stage kinds whose modules are in (`READY` markers)
        self.importing = False  # inside a preload step: SIGCHLD is handled at once
        self.later: list[str] = []  # log lines of a SIGCHLD handled inside a step
        self.helper: tuple[int, int] | None = None  # pid, pipe of the packages helper
        self.served = 0
        self.stopping = False
        self.conns: dict[int, Conn] = {}
        self.children: dict[int, Conn] = {}
        self.sel = selectors.DefaultSelector()

    # ---- set-up ------------------------------------------------------------------------------

    def listen(self, listener: socket.socket | None = None) -> None:
        """Serve on `listener` (bound by the command that started this runner, so stages could
        connect before this process existed), or bind the socket here (see `bind`)."""
        self.listener = listener if listener is not None else bind(self.path)
        self.inode = os.stat(self.path).st_ino
        self.listener.setblocking(False)
        self.sel.register(self.listener, selectors.EVENT_READ, "accept")
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_r, False)
        os.set_blocking(self.wake_w, False)
        signal.set_wakeup_fd(self.wake_w)
        signal.signal(signal.SIGCHLD, self._on_child)
        signal.signal(signal.SIGTERM, self._on_term)
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # its own session: Ctrl-C reaches clients
        self.sel.register(self.wake_r, selectors.EVENT_READ, "wake")
        self.pidfd = None
        if self.owner:
            try:
                self.pidfd = os.pidfd_open(self.owner)
                self.sel.register(self.pidfd, selectors.EVENT_READ, "owner")
            except (AttributeError, OSError):  # no pidfd: polled in the loop
                self.pidfd = None

    def _on_term(self, *_: Any) -> None:
        self.stopping = True

    def _on_child(self, *_: Any) -> None:
        """A stage ended. Inside a preload step (an import can take a second) its client is
        answered at once, from the handler: a step touches none of the runner's own state.
        Outside one, the loop reaps (woken by the wakeup fd)."""
        if self.importing:
            with contextlib.suppress(Exception):
                self._reap()

    # ---- the loop ----------------------------------------------------------------------------

    def run(self) -> int:
        """Preload (serving between steps), then serve until stopped; returns the exit code.

        The garbage collector is off while importing (thousands of new objects: a collection
        would walk them again and again) and the imported objects are frozen before each fork,
        so a child's collections never touch (and copy) the pages the runner shares with it."""
        pin_threads()
        gc.disable()
        t0 = time.perf_counter()
        names = PRELOAD if os.environ.get(PRELOAD_ENV) != "0" else ()
        if PACKAGES in names:
            self.helper = preload.packages_helper(self._own_fds(None))
        for name in preload.steps(names):
            self.step(0)
            if self.stopping:
                break
            if name.startswith(READY):
                self.ready.add(name[1:])
                self._release()
                if name == READY + EXTRAS_AFTER and self.owner:
                    break  # a command's own runner: its stages need no more (see PRELOAD)
                continue
            self.importing = True
            try:
                if name == PACKAGES and self.helper is not None:
                    preload.take_packages(self.helper)
                    self.helper = None
                _t = time.perf_counter()
                preload.load(name)
            finally:
                self.importing = False
            if os.environ.get(TRACE_ENV) and time.perf_counter() - _t > 0.05:
                log(f"TRACE {name} {time.perf_counter() - _t:.3f}")
            self._flush_later()
        self.preloaded = True
        self._release()
        gc.freeze()
        gc.enable()
        log(f"preloaded in {time.perf_counter() - t0:.2f}s; {len(sys.modules)} modules")
        while not (self.stopping and not self.children):
            self.step(0.5)
            if self.owner and self.pidfd is None and not _alive(self.owner):
                self._stop("its owner exited")
            if self.idle and not self.children and time.monotonic() - self.last > self.idle:
                self._stop(f"idle for {self.idle:.0f}s")
        self.close()
        return 0

    def _stop(self, why: str) -> None:
        if not self.stopping:
            log(f"stopping: {why}")
        self.stopping = True

    def close(self) -> None:
        """Stop listening; the socket file goes only while it is still this runner's."""
        with contextlib.suppress(OSError):
            if os.stat(self.path).st_ino == self.inode:
                self.path.unlink()
        with contextlib.suppress(OSError, KeyError, ValueError):
            self.sel.unregister(self.listener)
        self.listener.close()

    def step(self, timeout: float) -> None:
        """Handle what is ready (waiting at most `timeout` seconds)."""
        if self.stopping and self.listener.fileno() >= 0:
            self.close()
        for key, _ in self.sel.select(timeout):
            what = key.data
            if what == "accept":
                self._accept()
            elif what == "wake":
                with contextlib.suppress(BlockingIOError):
                    os.read(self.wake_r, 512)
                self._reap()
            elif what == "owner":
                self.sel.unregister(key.fileobj)
                self._stop("its owner exited")
            else:
                self._readable(what)
        self._reap()

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self.listener.accept()
            except (BlockingIOError, OSError):
                return
            if peer_uid(sock) != os.getuid():  # the socket is 0600; checked again all the same
                sock.close()
                continue
            sock.setblocking(False)
            conn = Conn(sock)
            self.conns[sock.fileno()] = conn
            self.sel.register(sock, selectors.EVENT_READ, conn)

    def _drop(self, conn: Conn) -> None:
        conn.waiting = None
        with contextlib.suppress(KeyError, ValueError):
            self.sel.unregister(conn.sock)
        self.conns.pop(conn.sock.fileno(), None)
        for fd in conn.fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        conn.fds = []
        conn.sock.close()

    def _readable(self, conn: Conn) -> None:
        try:
            data, fds, _, _ = socket.recv_fds(conn.sock, 65536, 8)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data, fds = b"", []
        conn.fds += fds
        if not data:  # the client went away
            if conn.pid is not None:  # killed client: its stage goes too, as it would have
                with contextlib.suppress(ProcessLookupError):
                    os.kill(conn.pid, signal.SIGKILL)
                with contextlib.suppress(KeyError, ValueError):
                    self.sel.unregister(conn.sock)
            else:
                self._drop(conn)
            return
        conn.buf += data
        if len(conn.buf) > MAX_REQUEST:
            self._drop(conn)
            return
        while b"\n" in conn.buf:
            line, _, rest = bytes(conn.buf).partition(b"\n")
            conn.buf = bytearray(rest)
            try:
                msg = json.loads(line)
                if not isinstance(msg, dict):
                    raise ValueError("not an object")
            except ValueError:
                self._drop(conn)
                return
            self._message(conn, msg)

    def _message(self, conn: Conn, msg: dict[str, Any]) -> None:
        self.last = time.monotonic()
        if conn.pid is not None:  # a running stage: only signals to relay
            sig = msg.get("signal")
            if isinstance(sig, int) and sig in ALLOWED_SIGNALS:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(conn.pid, sig)
            return
        op = msg.get("op")
        if op == "status":
            send(conn.sock, self.status())
            self._drop(conn)
        elif op == "stop":
            self._stop("asked to stop")
            send(conn.sock, {"ok": True, "pid": os.getpid()})
            self._drop(conn)
        elif op == "run":
            reason = self.declines(msg, conn.fds)
            if reason:
                send(conn.sock, {"declined": reason})
                self._drop(conn)
                return
            if conn.waiting is None:
                conn.waiting = msg
                self._release()
        else:
            self._drop(conn)

    def status(self) -> dict[str, Any]:
        """What `mlops runner status` shows."""
        return {
            "ok": True,
            "pid": os.getpid(),
            "common": self.common,
            "socket": str(self.path),
            "started": self.started,
            "preloaded": self.preloaded,
            "served": self.served,
            "running": len(self.children),
            "owner": self.owner,
            "idle": self.idle,
            "fingerprint": self.fingerprint,
        }

    def declines(self, msg: dict[str, Any], fds: list[int]) -> str | None:
        """Why this runner will not run the request (the client then runs it itself)."""
        if self.stopping:
            return "the runner is stopping"
        if len(fds) != 3:
            return "stdin, stdout and stderr were not passed"
        if msg.get("common") != self.common:
            return "another repository"
        if msg.get("fingerprint") != self.fingerprint:
            return "another interpreter, import path or thread settings"
        argv, cwd, env = msg.get("argv"), msg.get("cwd"), msg.get("env")
        if not (isinstance(argv, list) and all(isinstance(a, str) for a in argv)):
            return "bad argv"
        if not isinstance(cwd, str) or not os.path.isdir(cwd):
            return "bad working directory"
        if not (isinstance(env, dict) and all(isinstance(v, str) for v in env.values())):
            return "bad environment"
        if not _limits_apply(msg.get("limits")):
            return "resource limits this runner cannot apply"
        try:
            data = _pipeline(Path(cwd))
        except Exception:  # the stage reports it itself, in-process
            return "pipeline.yaml does not load"
        if _is_dask(data):
            return "engine: dask runs stages as before"
        msg["kind"] = stage_kind(data, argv[1:2])  # when to fork it (`READY`)
        return None

    def _release(self) -> None:
        """Fork the waiting stages whose modules are in (all of them once preloaded); while
        stopping, decline them (their clients run them themselves)."""
        for conn in list(self.conns.values()):
            msg = conn.waiting
            if msg is None or conn.pid is not None:
                continue
            if self.stopping:
                send(conn.sock, {"declined": "the runner is stopping"})
                self._drop(conn)
            elif self.preloaded or msg.get("kind") in self.ready:
                conn.waiting = None
                self._fork(conn, msg)

    def _flush_later(self) -> None:
        lines, self.later = self.later, []
        for line in lines:
            log(line)

    def _fork(self, conn: Conn, msg: dict[str, Any]) -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        gc.freeze()
        pid = os.fork()
        if pid == 0:  # the child: never returns
            from mlops.runner.child import run_child

            run_child(msg, conn.fds, self._own_fds(conn))
        self.served += 1
        conn.pid = pid
        self.children[pid] = conn
        for fd in conn.fds:
            os.close(fd)
        conn.fds = []
        log(f"stage {' '.join(msg['argv'])} in {msg['cwd']}: pid {pid}")
        send(conn.sock, {"started": pid})

    def _own_fds(self, conn: Conn | None) -> list[int]:
        fds = [self.listener.fileno(), self.wake_r, self.wake_w, self.sel.fileno()]
        fds += [c.sock.fileno() for c in self.conns.values()]
        if self.pidfd is not None:
            fds.append(self.pidfd)
        return [fd for fd in fds if fd >= 0]

    def _reap(self) -> None:
        while self.children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            conn = self.children.pop(pid, None)
            if conn is None:
                continue
            if os.WIFSIGNALED(status):
                result = {"signal": os.WTERMSIG(status)}
            else:
                result = {"exit": os.waitstatus_to_exitcode(status)}
            line = f"pid {pid}: {result}"
            if self.importing:  # inside the SIGCHLD handler: the log is written after the step
                self.later.append(f"{line} (at {stamp(time.time())})")
            else:
                log(line)
            with contextlib.suppress(OSError):
                conn.sock.setblocking(True)
                send(conn.sock, result)
            self._drop(conn)
            self.last = time.monotonic()


def bind(path: Path) -> socket.socket:
    """A listening socket at `path` (0600, in a 0700 directory); a stale socket of a dead
    runner goes; OSError when a runner already listens there."""
    with contextlib.suppress(FileNotFoundError):
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(str(path))
        except ConnectionRefusedError:
            path.unlink()  # nobody listens: left by a killed runner
        else:
            raise OSError(f"a runner already listens on {path}")
        finally:
            probe.close()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        old = os.umask(0o177)
        try:
            listener.bind(str(path))
        finally:
            os.umask(old)
        os.chmod(path, 0o600)
        listener.listen(64)
    except OSError:
        listener.close()
        raise
    return listener


ALLOWED_SIGNALS = frozenset(
    int(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2)
)


def send(sock: socket.socket, obj: dict[str, Any]) -> None:
    """One JSON line."""
    with contextlib.suppress(OSError):
        sock.sendall(json.dumps(obj).encode() + b"\n")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _limits_apply(limits: Any) -> bool:
    import resource

    if not isinstance(limits, dict):
        return False
    for name, pair in limits.items():
        res = getattr(resource, name, None) if name.startswith("RLIMIT_") else None
        if not isinstance(res, int) or not isinstance(pair, list) or len(pair) != 2:
            return False
        hard = resource.getrlimit(res)[1]
        if hard != resource.RLIM_INFINITY and (pair[1] == resource.RLIM_INFINITY or pair[1] > hard):
            return False  # the child could not raise its hard limit to the client's
    return True


def _pipeline(cwd: Path) -> Any:
    from mlops.config import limits

    return limits.load_file(cwd / "pipeline.yaml")


def _is_dask(data: Any) -> bool:
    engine = data.get("engine") if isinstance(data, dict) else None
    kind = engine.get("kind") if isinstance(engine, dict) else engine
    return kind == "dask"


def dask_engine(cwd: Path) -> bool:
    """True when pipeline.yaml in `cwd` asks for `engine: dask` (or cannot be read: the stage
    then reports that itself, in-process)."""
    try:
        return _is_dask(_pipeline(cwd))
    except Exception:
        return True


def stage_kind(data: Any, name: list[str]) -> str | None:
    """The `uses:` of the stage `name` (a one-item list) in pipeline.yaml's `data`, or None."""
    stages = data.get("stages") if isinstance(data, dict) else None
    stage = stages.get(name[0]) if isinstance(stages, dict) and name else None
    kind = stage.get("uses") if isinstance(stage, dict) else None
    return kind if isinstance(kind, str) else None

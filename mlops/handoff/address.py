"""Where a repository's runner listens, and what a runner must share with its clients.

Kept free of third-party imports: the thin client imports this module on every stage.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
import sys
from pathlib import Path

from mlops.handoff import DIR_ENV

SUN_PATH_MAX = 107  # AF_UNIX sun_path is 108 bytes on Linux, one of them the terminating NUL
# thread-pool sizes native libraries read once, when they are loaded: a runner pins them before
# importing anything and serves only clients whose environment asks for the same sizes
THREAD_VARS = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "BLIS_NUM_THREADS",
)
# other variables read at import time by what the runner preloads
IMPORT_VARS = (*THREAD_VARS, "PYTHONHASHSEED", "PYTHONPATH", "SCIPY_ARRAY_API", "KMP_AFFINITY")


def git_common_dir(start: Path | str) -> Path | None:
    """The git common directory of the repository holding `start` (shared by its worktrees).

    Read from the `.git` entries without starting git (this runs on every stage); falls back to
    `git rev-parse` when GIT_DIR or GIT_COMMON_DIR steer git elsewhere. None outside a repository.
    """
    if os.environ.get("GIT_DIR") or os.environ.get("GIT_COMMON_DIR"):
        import subprocess

        try:
            out = subprocess.run(
                ["git", "rev-parse", "--path-format=absolute", "--git-common-dir"],
                cwd=start,
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return None
        return Path(out).resolve() if out else None
    here = Path(start).resolve()
    for folder in (here, *here.parents):
        dotgit = folder / ".git"
        try:
            if dotgit.is_dir():
                return _common_of(dotgit)
            if dotgit.is_file():
                text = dotgit.read_text(encoding="utf-8", errors="replace").strip()
                if not text.startswith("gitdir:"):
                    return None
                gitdir = (folder / text.removeprefix("gitdir:").strip()).resolve()
                return _common_of(gitdir)
        except OSError:
            return None
    return None


def _common_of(gitdir: Path) -> Path:
    commondir = gitdir / "commondir"
    if commondir.is_file():
        rel = commondir.read_text(encoding="utf-8", errors="replace").strip()
        return (gitdir / rel).resolve()
    return gitdir.resolve()


def runtime_dir(base: Path | None = None) -> Path:
    """A directory only this user may enter: `base`, else $MLOPS_RUNNER_DIR, else
    $XDG_RUNTIME_DIR/mlops, else `<tmp>/mlops-<uid>`. Created 0700; refused (OSError) when
    another user owns it or others may enter it."""
    if base is not None:
        path = base
    elif os.environ.get(DIR_ENV):
        path = Path(os.environ[DIR_ENV])
    elif os.environ.get("XDG_RUNTIME_DIR") and os.path.isdir(os.environ["XDG_RUNTIME_DIR"]):
        path = Path(os.environ["XDG_RUNTIME_DIR"]) / "mlops"
    else:
        path = _tmp_dir()
    with contextlib.suppress(FileExistsError):
        path.mkdir(mode=0o700, parents=True)
    info = os.lstat(path)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
        raise OSError(f"{path} is not a directory of this user")
    if info.st_mode & 0o077:
        raise OSError(f"{path} may be entered by other users (mode {info.st_mode & 0o777:o})")
    return path


def _tmp_dir() -> Path:
    # what tempfile.gettempdir() finds, without importing it (the client runs on every stage)
    base = next((os.environ[v] for v in ("TMPDIR", "TEMP", "TMP") if os.environ.get(v)), "/tmp")
    return Path(base) / f"mlops-{os.getuid()}"


def key(common: Path) -> str:
    """The runner's key: a hash of the repository's git common directory (its real path)."""
    return hashlib.sha256(os.fsencode(Path(common).resolve())).hexdigest()[:24]


def socket_path(common: Path) -> Path:
    """The socket a repository's runner listens on (short enough for AF_UNIX)."""
    path = runtime_dir() / f"{key(common)}.sock"
    if len(os.fsencode(path)) > SUN_PATH_MAX:  # a deep runtime directory: the short default
        path = runtime_dir(_tmp_dir()) / f"{key(common)}.sock"
    return path


def cpus() -> int:
    """The number of CPUs this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def fingerprint() -> dict[str, object]:
    """What a client and its runner must agree on for a forked stage to behave as in-process:
    the interpreter, the import path (beyond the working directory) and the import-time
    environment. A mismatch makes the client run the stage itself."""
    import mlops

    package = os.path.dirname(os.path.realpath(mlops.__file__))
    path = [p for p in sys.path[1:] if p]
    return {
        "python": os.path.realpath(sys.executable),
        "version": sys.version,
        "flags": list(sys.flags),
        "path": path,
        # code changed since the runner imported it (an edited mlops, an installed package):
        # the newest mlops source file and the import directories' own change times
        "code": [_newest(package), *(_mtime(p) for p in path)],
        "mlops": package,
        "env": {k: os.environ.get(k) for k in IMPORT_VARS},
        "cpus": len(os.sched_getaffinity(0))
        if hasattr(os, "sched_getaffinity")
        else os.cpu_count(),
        "uid": os.getuid(),
    }


def _mtime(path: str) -> int:
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return 0


def _newest(folder: str) -> int:
    newest = 0
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = [d for d in dirnames if d != "__pycache__"]
        for name in filenames:
            if name.endswith(".py"):
                newest = max(newest, _mtime(os.path.join(dirpath, name)))
    return newest

"""DVC, in-process: the only module that imports `dvc`.

`reproduce` drives `Repo.reproduce` with a `repro_fn` hook, so each stage reports its start, end and
duration, and its command's output (which DVC lets stage commands write straight to the process's
stdout and stderr) is captured per stage into a log file by redirecting file descriptors 1 and 2.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlops.errors import GitStateError, MlopsError, UsageError


@contextlib.contextmanager
def redirect_fds(path: Path) -> Iterator[None]:
    """Send everything written to fd 1 and 2 (this process and its children) to `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    saved = [os.dup(1), os.dup(2)]
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        yield
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for f in (*saved, fd):
            os.close(f)


@contextlib.contextmanager
def _repo(root: Path) -> Iterator[Any]:
    """An open DVC repo with the working directory at its root (DVC resolves targets from cwd)."""
    from dvc.repo import Repo

    here = Path.cwd()
    os.chdir(root)
    repo = Repo(str(root))
    try:
        yield repo
    finally:
        repo.close()
        os.chdir(here)


def preload() -> None:
    """Import what `reproduce` needs now (before forking processes that will all use it)."""
    import dvc.repo.reproduce
    import dvc.stage.run  # noqa: F401


def init(root: Path, log: Path) -> None:
    """`dvc init` in `root` (a git work tree); DVC stages its own files in git."""
    from dvc.repo import Repo

    with redirect_fds(log):
        Repo.init(str(root))


def configure_remote(
    root: Path, name: str, url: str, log: Path, options: dict[str, Any] | None = None
) -> None:
    """Make `name` (at `url`, relative to the project root unless absolute or a URL) the default;
    `options` are its other settings (`endpointurl`, `region`, ...; never credentials)."""
    from dvc.config import ConfigError as DvcConfigError

    # DVC stores a relative path relative to .dvc/ and reads one given here relative to the cwd,
    # which _repo() sets to the project root
    try:
        with _repo(root) as repo, redirect_fds(log), repo.config.edit() as conf:
            conf["remote"][name] = {"url": url, **_option_text(options)}
            conf["core"]["remote"] = name
    except DvcConfigError as exc:
        raise UsageError(
            f"DVC refuses remote {name!r} ({url}): {_describe(exc)}",
            "Check `remote:` in pipeline.yaml: `options` takes the remote's DVC settings "
            "(`dvc remote modify --help`).",
        ) from None


def _option_text(options: dict[str, Any] | None) -> dict[str, str]:
    return {
        k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in (options or {}).items()
    }


def remote_plugin_missing(url: str) -> str | None:
    """The `dvc[...]` extra a remote URL needs when its plugin is not installed, else None."""
    import importlib.util

    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    plugin = {
        "s3": "dvc_s3",
        "gs": "dvc_gs",
        "azure": "dvc_azure",
        "ssh": "dvc_ssh",
        "hdfs": "dvc_hdfs",
        "webhdfs": "dvc_webhdfs",
        "oss": "dvc_oss",
        "gdrive": "dvc_gdrive",
        "webdav": "dvc_webdav",
        "webdavs": "dvc_webdav",
    }.get(scheme)
    if plugin is None or importlib.util.find_spec(plugin) is not None:
        return None
    return {"webdavs": "webdav"}.get(scheme, scheme)


def remote_configured(
    root: Path, name: str, url: str, options: dict[str, Any] | None = None
) -> bool:
    """Cheap check (no DVC import) that `.dvc/config` already names this default remote."""
    config = root / ".dvc" / "config"
    try:
        text = config.read_text(encoding="utf-8")
    except FileNotFoundError:
        return False
    want = (
        url if ("://" in url or os.path.isabs(url)) else os.path.relpath(root / url, root / ".dvc")
    )
    core = re.search(r"^\[core\][^\[]*?^\s*remote\s*=\s*(\S+)", text, re.M)
    body = re.search(rf"^\['remote \"{re.escape(name)}\"'\]\s*$([^\[]*)", text, re.M)
    if not (core and core.group(1) == name and body):
        return False
    have = dict(re.findall(r"^\s*([\w-]+)\s*=\s*(.*?)\s*$", body.group(1), re.M))
    return have.pop("url", None) == want and have == _option_text(options)


@dataclass
class StageEvent:
    stage: str
    phase: str  # "start" | "end"
    status: str = ""  # ran | cached | skipped | failed | would run (on "end")
    seconds: float = 0.0
    log: Path | None = None
    exit_status: int | None = None
    error: str | None = None


class ReproFailed(MlopsError):
    """A stage failed inside DVC; `stage`, `exit_status` and `log` say which and how."""

    def __init__(
        self,
        stage: str,
        message: str,
        exit_status: int | None,
        log: Path | None,
        events: list[StageEvent],
    ) -> None:
        super().__init__(message)
        self.stage = stage
        self.exit_status = exit_status
        self.log = log
        self.events = events


class DvcLocked(GitStateError):
    """DVC's own lock (repository or stage rwlock) is held by another process (exit 5)."""


def _lock_error(exc: BaseException | None) -> bool:
    from dvc.lock import LockError

    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, LockError):
            return True
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return False


class RunHalted(MlopsError):
    """A check between two stages stopped the run; `error` says why, `events` what ran."""

    def __init__(self, error: MlopsError, events: list[StageEvent]) -> None:
        super().__init__(error.message, error.hint)
        self.error = error
        self.events = events


_EXIT_RE = re.compile(r"exited with (-?\d+)")


def _exit_status(exc: BaseException | None) -> int | None:
    while exc is not None:
        m = _EXIT_RE.search(str(exc))
        if m:
            return int(m.group(1))
        exc = exc.__cause__ or exc.__context__
    return None


def _describe(first: BaseException) -> str:
    parts: list[str] = []
    exc: BaseException | None = first
    while exc is not None and len(parts) < 4:
        text = str(exc).strip()
        if text and text not in parts:
            parts.append(text)
        exc = exc.__cause__ or exc.__context__
    return ": ".join(parts) or type(first).__name__


DVC_ERROR_PREFIX = "mlops: DVC reported: "


def _log_dvc_error(log: Path, error: str | None) -> None:
    """Keep DVC's own reason in the stage's log: it is raised, not printed, so the log of a
    stage that failed before or after its command would otherwise be empty."""
    if not error:
        return
    with contextlib.suppress(OSError), open(log, "a", encoding="utf-8") as fh:
        fh.write(f"\n{DVC_ERROR_PREFIX}{error}\n")


def _restored_from_run_cache(log: Path) -> bool:
    """DVC restored the outputs of an identical earlier run instead of running the command."""
    try:
        return "is cached - skipping run" in log.read_text(errors="replace")
    except OSError:
        return False


def _prepend_interpreter_to_path() -> None:
    """Stage commands say `python -m mlops.stages` / `mlops`: make them this environment's."""
    bindir = os.path.dirname(sys.executable)
    path = os.environ.get("PATH", "")
    if path.split(os.pathsep)[:1] != [bindir]:
        os.environ["PATH"] = bindir + os.pathsep + path


def reproduce(
    root: Path,
    targets: list[str] | None,
    *,
    force: bool = False,
    dry: bool = False,
    log_dir: Path,
    on_event: Callable[[StageEvent], None] | None = None,
    after_stage: Callable[[str], None] | None = None,
) -> list[StageEvent]:
    """Reproduce `targets` (all stages when None) and their upstream stages through DVC.

    Returns one "end" event per stage DVC visited, in order. Raises `ReproFailed` on the first
    failing stage (its outputs are not restored here; see `checkout`). `after_stage(name)` is
    called after each stage that is up to date afterwards (not in a dry run); an `MlopsError`
    it raises stops the run before the next stage (`RunHalted`), with the lock of the stages
    that ran written.
    """
    from dvc.exceptions import DvcException

    _prepend_interpreter_to_path()
    events: list[StageEvent] = []
    reproduced: list[Any] = []
    emit = on_event or (lambda e: None)
    log_dir.mkdir(parents=True, exist_ok=True)

    def repro_fn(stage: Any, **kwargs: Any) -> Any:
        name = stage.addressing
        log = log_dir / f"{name}.log"
        emit(StageEvent(name, "start", log=log))
        t0 = time.perf_counter()
        try:
            with redirect_fds(log):
                # like dvc's _reproduce_stage, but dvc.lock is written once at the end (below):
                # each per-stage rewrite costs a full YAML parse and dump of the lock file
                ret = stage.reproduce(**kwargs)
        except BaseException as exc:
            ev = StageEvent(name, "end", "failed", time.perf_counter() - t0, log, _exit_status(exc))
            ev.error = _describe(exc)
            _log_dvc_error(log, ev.error)
            events.append(ev)
            emit(ev)
            raise
        status = ("would run" if dry else "ran") if ret else "skipped"
        if status == "ran" and _restored_from_run_cache(log):
            status = "cached"
        if ret and not dry:
            reproduced.append(ret)
        ev = StageEvent(name, "end", status, time.perf_counter() - t0, log)
        events.append(ev)
        emit(ev)
        if after_stage is not None and not dry:
            try:
                after_stage(name)
            except MlopsError as exc:
                halted.append(exc)
                raise
        return ret

    halted: list[MlopsError] = []
    try:
        with _repo(root) as repo, redirect_fds(log_dir / "dvc.log"):
            try:
                repo.reproduce(
                    targets=targets or None,
                    force=force,
                    dry=dry,
                    repro_fn=repro_fn,
                    interactive=False,
                )
            except DvcException:
                if halted:
                    _dump_lock(reproduced)
                raise
            _dump_lock(reproduced)
    except DvcException as exc:
        if _lock_error(exc):  # another DVC process: restore nothing underneath it
            raise DvcLocked(
                f"another DVC process is using {root}: {_describe(exc)}",
                "Wait for it to finish (mlops commands wait for each other; a `dvc` command "
                "run by hand does not), then run again. Nothing was changed or restored.",
            ) from exc
        if halted:
            raise RunHalted(halted[0], events) from None
        failed = next((e for e in reversed(events) if e.status == "failed"), None)
        if failed is None:
            raise UsageError(f"DVC could not plan the run: {_describe(exc)}") from exc
        raise ReproFailed(
            failed.stage, failed.error or str(exc), failed.exit_status, failed.log, events
        ) from exc
    return events


def _dump_lock(stages: list[Any]) -> None:
    """Record every reproduced stage in its lock file, one write per dvc.yaml."""
    by_file: dict[str, list[Any]] = {}
    for stage in stages:
        by_file.setdefault(stage.dvcfile.path, []).append(stage)
    for group in by_file.values():
        group[0].dvcfile.dump_stages(group, update_pipeline=False)


def checkout(root: Path, targets: list[str], log: Path) -> None:
    """Put the outputs of `targets` back as `dvc.lock` records them (from the DVC cache)."""
    with _repo(root) as repo, redirect_fds(log), contextlib.suppress(Exception):
        repo.checkout(targets=targets, force=True)


def status(root: Path, targets: list[str] | None = None) -> dict[str, list[Any]]:
    """`dvc status`: stage name -> list of changes (deps, outs, params, command)."""
    with _repo(root) as repo:
        status: dict[str, list[Any]] = repo.status(targets=targets or None)
        return status


_CACHE_SECTION = re.compile(r"^\s*\[\s*cache\s*\]", re.M)


def _sets_cache(root: Path) -> bool:
    for name in ("config", "config.local"):
        try:
            if _CACHE_SECTION.search((root / ".dvc" / name).read_text(encoding="utf-8")):
                return True
        except OSError:
            continue
    return False


def cache_dir(root: Path) -> str:
    """The absolute path of the project's DVC cache directory (DVC is asked only if configured)."""
    if not _sets_cache(root):
        return str(root / ".dvc" / "cache")
    with _repo(root) as repo:
        return str(repo.cache.local_cache_dir)


def share_cache(root: Path, cache: str, log: Path, site: str | None = None) -> None:
    """Make the repository at `root` use the cache directory `cache` (its local config), and
    keep DVC's per-repository state (file hashes, indexes) in `site` when given, instead of a
    new directory under /var/tmp/dvc for every path a repository ever had."""
    local = root / ".dvc" / "config.local"
    if not local.exists():  # the common case: write the settings without starting DVC
        text = f"[cache]\n    dir = {cache}\n"
        if site:
            text += f"[core]\n    site_cache_dir = {site}\n"
        local.write_text(text, encoding="utf-8")
        return
    with _repo(root) as repo, redirect_fds(log), repo.config.edit("local") as conf:
        conf["cache"]["dir"] = cache
        if site:
            conf["core"]["site_cache_dir"] = site


def push(root: Path, log: Path, *, revs: list[str] | None = None) -> int:
    """`dvc push` of every output (of the workspace, or of the commits `revs`) to the default
    remote; returns how many files were transferred. Raises `MlopsError` with DVC's reason."""
    try:
        with _repo(root) as repo, redirect_fds(log):
            if revs:
                return int(repo.push(revs=revs, workspace=False) or 0)
            return int(repo.push() or 0)
    except Exception as exc:  # DVC's, OSError, and the remote plugin's own (botocore, ...)
        raise MlopsError(_describe(exc)) from exc


def read_at(root: Path, path: str, rev: str | None = None) -> bytes:
    """The bytes of DVC-tracked `path` at git revision `rev` (from the cache or the remote)."""
    import dvc.api

    here = Path.cwd()
    os.chdir(root)
    try:
        data: bytes = dvc.api.read(path, repo=str(root), rev=rev, mode="rb")
        return data
    finally:
        os.chdir(here)


def locked_output(root: Path, stage: str, path: str) -> Path | None:
    """The DVC cache file holding `path` as `dvc.lock` records it for `stage`, if present.

    Read without importing DVC (a stage reads its own previous output this way: when the stage
    runs, `dvc.lock` still describes the last complete run). None when there is no lock entry,
    the output is not cached, or the cache does not hold it (e.g. a fresh clone before
    `dvc pull`).
    """
    import configparser

    import yaml

    lock = Path(root) / "dvc.lock"
    try:
        data = yaml.safe_load(lock.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        return None
    outs = (data.get("stages") or {}).get(stage, {}).get("outs") or []
    digest = next((o.get("md5") for o in outs if o.get("path") == path), None)
    if not digest or digest.endswith(".dir"):
        return None
    cache = Path(root) / ".dvc" / "cache"
    for name in ("config", "config.local"):
        parser = configparser.ConfigParser()
        try:
            parser.read(Path(root) / ".dvc" / name, encoding="utf-8")
        except configparser.Error:
            continue
        configured = parser.get("cache", "dir", fallback=None)
        if configured:
            cache = (Path(root) / ".dvc" / configured).resolve()
    found = cache / "files" / "md5" / digest[:2] / digest[2:]
    return found if found.is_file() else None


@dataclass
class FetchedDir:
    """A DVC-tracked directory downloaded as committed at a revision."""

    path: Path  # where it was written
    md5: str | None  # DVC's hash of the whole directory (`<md5>.dir`), as dvc.lock records it
    files: dict[str, str]  # relative path -> md5 DVC recorded for that file


def fetch_dir(root: Path, path: str, rev: str, dest: Path) -> FetchedDir:
    """Download DVC-tracked directory `path` as committed at git revision `rev` into `dest`
    (which must not exist), from the DVC cache or else the project's default remote.

    Returns the md5 of every file as DVC recorded it at `rev`, so the caller can check the bytes
    it got against what git holds (DVC does not re-hash what it reads from a cache or remote).
    Raises `MlopsError` with DVC's reason when `rev`, the path or its data cannot be found.
    """
    from dvc.api import DVCFileSystem

    here = Path.cwd()
    os.chdir(root)
    fs = None
    try:
        fs = DVCFileSystem(str(root), rev=rev)
        info = fs.info(path)
        if info.get("type") != "directory":
            raise MlopsError(f"{path} at {rev[:12]} is not a DVC-tracked directory")
        files: dict[str, str] = {}
        prefix = path.rstrip("/") + "/"
        for name, entry in fs.find(path, detail=True).items():
            rel = name[len(prefix) :] if name.startswith(prefix) else name
            files[rel] = str(entry.get("md5") or "")
        fs.get(path, str(dest), recursive=True)
        md5 = info.get("md5")
        return FetchedDir(Path(dest), str(md5) if md5 else None, files)
    except MlopsError:
        raise
    except Exception as exc:  # DVC raises many types: missing revision, path, cache or remote
        raise MlopsError(_describe(exc)) from exc
    finally:
        if fs is not None:
            with contextlib.suppress(Exception):
                fs.close()
        os.chdir(here)

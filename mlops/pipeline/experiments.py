"""Experiments: run the pipeline with changed params without touching the workspace.

`mlops exp run -S train.C=0.5` makes a scratch work tree of HEAD under `.mlops/exp/<id>/` (a
`git worktree`, sharing the repository's objects), copies the workspace's uncommitted changes
into it, links the pipeline's data and outputs from the workspace (hard links, or copies across
file systems), points it at the project's DVC cache, sets the params there, and runs the pipeline
in it. The run is recorded in the project's run records (kind `exp`, with its overrides), its
outputs land in the shared DVC cache, and the scratch tree is removed whatever happens: the
workspace's files, `params.yaml` and `dvc.lock` are never written, so a failed experiment leaves
the workspace exactly as it was. A sweep (`-S train.C=0.1,1,10`) runs `--jobs` experiments at
once, each as above in its own worker process (`mlops.pipeline.sweep`).

`mlops exp apply ID` writes a recorded run's params into `params.yaml` (keeping its comments);
`mlops run` then reproduces it, restoring unchanged stages from DVC's run cache.
"""

from __future__ import annotations

import io
import itertools
import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlops.adapters import dvc, git, lock
from mlops.config import PARAMS_FILE, Project, limits
from mlops.config.yamlfile import atomic_write_text
from mlops.errors import GitStateError, UsageError
from mlops.pipeline.compare import flatten
from mlops.pipeline.records import RunStore, new_run_id
from mlops.pipeline.runner import RunResult, StageEvent, ensure_project, run_pipeline

SCRATCH = Path(".mlops/exp")
_KEY = re.compile(r"^[A-Za-z_][\w-]*(\.[A-Za-z_0-9][\w-]*)*$")


def _scalar(text: str) -> Any:
    import yaml

    try:
        if not text.strip():
            return None
        limits.check_node(yaml.compose(text, Loader=limits.Loader), f"the value {text[:40]!r}")
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def parse_settings(settings: list[str]) -> list[dict[str, Any]]:
    """`["train.C=0.1,1", "train.max_iter=200"]` -> one overrides dict per combination.

    A value is read as YAML (`0.5` a number, `true` a boolean, `[1, 2]` a list); commas outside
    brackets sweep: each value is one experiment, and several swept keys multiply.
    """
    keys: list[str] = []
    choices: list[list[Any]] = []
    for item in settings:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not _KEY.match(key):
            raise UsageError(
                f"cannot read the setting {item!r}",
                "Write -S SECTION.KEY=VALUE, e.g. -S train.C=0.5 "
                "(or -S train.C=0.1,1,10 to sweep).",
            )
        raw = raw.strip()
        if "," in raw and not raw.startswith(("[", "{", "'", '"')):
            values = [_scalar(v) for v in raw.split(",")]
        else:
            values = [_scalar(raw)]
        if key in keys:
            choices[keys.index(key)] += values
        else:
            keys.append(key)
            choices.append(values)
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*choices)]


def _yaml():
    from ruamel.yaml import YAML

    y = YAML()
    y.preserve_quotes = True
    y.width = 4096
    return y


def set_params(text: str, overrides: dict[str, Any]) -> str:
    """params.yaml text with each dotted key set (sections created as needed), comments kept."""
    y = _yaml()
    data = y.load(text) if text.strip() else None
    if data is None:
        from ruamel.yaml.comments import CommentedMap

        data = CommentedMap()
    for key, value in overrides.items():
        parts = key.split(".")
        cur = data
        for i, part in enumerate(parts[:-1]):
            nxt = cur.get(part) if isinstance(cur, dict) else None
            if nxt is None:
                cur[part] = {}
                nxt = cur[part]
            elif not isinstance(nxt, dict):
                raise UsageError(
                    f"cannot set {key}: {'.'.join(parts[: i + 1])} is not a section in params.yaml"
                )
            cur = nxt
        cur[parts[-1]] = value
    buf = io.StringIO()
    y.dump(data, buf)
    return buf.getvalue()


def _link_or_copy(src: Path, dst: Path) -> None:
    """Hard-link a file or a directory's files (copy across file systems or for symlinks)."""
    if src.is_dir() and not src.is_symlink():
        for dirpath, _dirs, files in os.walk(src):
            rel = Path(dirpath).relative_to(src)
            (dst / rel).mkdir(parents=True, exist_ok=True)
            for name in files:
                _link_or_copy(Path(dirpath) / name, dst / rel / name)
        return
    dst.parent.mkdir(parents=True, exist_ok=True)
    if src.is_symlink():
        shutil.copy2(src, dst, follow_symlinks=False)
        return
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _inside(root: Path, rel: str) -> bool:
    if os.path.isabs(rel):
        return False
    full = os.path.normpath(root / rel)
    return full.startswith(str(root) + os.sep)


def make_scratch(root: Path, project: Any, dest: Path, log: Path) -> None:
    """A work tree at `dest` that looks like the workspace, sharing its DVC cache."""
    git.worktree_add(root, dest, "HEAD")
    for rel in git.changed_files(root, untracked=True):
        if not _inside(root, rel) or rel.startswith(str(SCRATCH)):
            continue
        src, dst = root / rel, dest / rel
        if src.is_file() or src.is_symlink():
            dst.parent.mkdir(parents=True, exist_ok=True)
            if dst.exists() or dst.is_symlink():
                dst.unlink()
            shutil.copy2(src, dst, follow_symlinks=False)
        elif not src.exists() and (dst.is_file() or dst.is_symlink()):
            dst.unlink()
    for st in project.stages.values():
        for rel in [*st.deps, *st.out_paths]:
            if _inside(root, rel) and (root / rel).exists() and not (dest / rel).exists():
                _link_or_copy(root / rel, dest / rel)
    local = root / ".dvc" / "config.local"
    if local.exists():
        shutil.copy2(local, dest / ".dvc" / "config.local")
    # DVC's state of this throw-away repository goes with it (.dvc/tmp is ignored by git and DVC)
    site = dest / ".dvc" / "tmp" / "site"
    dvc.share_cache(dest, dvc.cache_dir(root), log, site=str(site))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's
        return True
    return True


def remove_stale_scratch(root: Path) -> list[str]:
    """Remove scratch work trees left by experiments that were killed (their process is gone)."""
    base = root / SCRATCH
    removed: list[str] = []
    if not base.is_dir():
        return removed
    for entry in sorted(base.iterdir()):
        if not entry.is_dir():
            continue
        pid_file = entry.with_name(entry.name + ".pid")
        try:
            pid = int(pid_file.read_text().strip())
        except (OSError, ValueError):
            pid = 0
        if pid and _alive(pid):
            continue
        git.worktree_remove(root, entry)
        shutil.rmtree(entry, ignore_errors=True)
        pid_file.unlink(missing_ok=True)
        removed.append(entry.name)
    return removed


@dataclass
class ExpRun:
    """One experiment: its overrides and the (recorded) run result."""

    overrides: dict[str, Any]
    result: RunResult

    def to_dict(self) -> dict[str, Any]:
        return {"overrides": self.overrides, **self.result.to_dict()}


def _start(root: Path | str) -> Project:
    """The project, checked once per sweep: a commit to start from; stale scratch trees gone."""
    project = ensure_project(Path(root))
    if git.head(project.root) is None:
        raise GitStateError(
            "experiments start from a commit, and this repository has none yet",
            "Commit the project first: git add -A && git commit -m 'Start project'.",
        )
    remove_stale_scratch(project.root)
    return project


def run_experiment(
    root: Path | str,
    overrides: dict[str, Any],
    *,
    name: str | None = None,
    on_event: Callable[[StageEvent], None] | None = None,
    project: Project | None = None,
) -> ExpRun:
    """Run the pipeline once with `overrides` in a scratch work tree; record it as kind `exp`.

    `project`: the workspace's project as a sweep loaded and checked it (`_start`) once for all
    its experiments; loaded and checked here when None."""
    project = project or _start(root)
    root = project.root
    scratch = root / SCRATCH / new_run_id()
    scratch.parent.mkdir(parents=True, exist_ok=True)
    pid_file = scratch.with_name(scratch.name + ".pid")
    pid_file.write_text(str(os.getpid()))
    try:
        make_scratch(root, project, scratch, root / ".mlops" / "logs" / "exp-setup.log")
        params = scratch / PARAMS_FILE
        text = params.read_text(encoding="utf-8") if params.exists() else ""
        atomic_write_text(params, set_params(text, overrides))
        extra: dict[str, Any] = {"overrides": overrides}
        if name:
            extra["name"] = name
        result = run_pipeline(scratch, kind="exp", on_event=on_event, record_root=root, extra=extra)
    finally:
        git.worktree_remove(root, scratch)
        shutil.rmtree(scratch, ignore_errors=True)
        pid_file.unlink(missing_ok=True)
    return ExpRun(overrides, result)


def run_experiments(
    root: Path | str,
    settings: list[str],
    *,
    name: str | None = None,
    on_event: Callable[[StageEvent], None] | None = None,
    on_start: Callable[[dict[str, Any]], None] | None = None,
    on_finish: Callable[[ExpRun], None] | None = None,
    jobs: int | None = 1,
    warming: Callable[[], bool] | None = None,
) -> list[ExpRun]:
    """One experiment per combination of the settings (a sweep); results in sweep order.

    `jobs`: experiments run at once, each in its own worker process (`mlops.pipeline.sweep`);
    None: `sweep.default_jobs`. With one job they run one after the other in this process and
    `on_event` sees their stages; with more, `on_start` and `on_finish` say when each starts
    and ends; `warming()` says whether the warm runner is still importing (one experiment at a
    time until it is done). An interrupted experiment (Ctrl-C) ends the sweep.
    """
    from mlops.errors import Interrupted
    from mlops.pipeline import sweep

    if not settings:
        raise UsageError("no params to change", "Give at least one -S SECTION.KEY=VALUE.")
    combos = parse_settings(settings)
    jobs = sweep.default_jobs(len(combos)) if jobs is None else jobs
    if jobs < 1:
        raise UsageError(f"--jobs must be at least 1, not {jobs}")
    project = _start(root)
    if jobs == 1 or len(combos) == 1:
        runs: list[ExpRun] = []
        for overrides in combos:
            if on_start:
                on_start(overrides)
            run = run_experiment(root, overrides, name=name, on_event=on_event, project=project)
            runs.append(run)
            if on_finish:
                on_finish(run)
            if isinstance(run.result.error, Interrupted):
                break
        return runs
    _before_fork(project.root)

    def run_one(overrides: dict[str, Any], events: Callable[[StageEvent], None] | None) -> ExpRun:
        return run_experiment(root, overrides, name=name, on_event=events, project=project)

    return sweep.run_parallel(
        combos,
        run_one,
        jobs=jobs,
        cleanup=lambda: remove_stale_scratch(project.root),
        on_start=on_start,
        on_finish=on_finish,
        warming=warming,
    )


def _before_fork(root: Path) -> None:
    """What every worker would otherwise do for itself: import DVC (once, shared by the forks),
    and configure where run records are fetched from (a git config write two workers could
    race on)."""
    dvc.preload()
    RunStore(root).sync()


@dataclass
class ApplyResult:
    run_id: str
    changes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "changes": self.changes}


def _sync(target: Any, source: dict[str, Any], prefix: str, changes: list[str]) -> None:
    for key in [k for k in target if k not in source]:
        changes.append(f"{prefix}{key}: removed")
        del target[key]
    for key, value in source.items():
        here = f"{prefix}{key}"
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            _sync(target[key], value, here + ".", changes)
        elif key not in target or target[key] != value:
            old = target.get(key, "<absent>")
            changes.append(f"{here}: {old!r} -> {value!r}")
            target[key] = value


@lock.locked
def apply_experiment(root: Path | str, run_id: str, *, force: bool = False) -> ApplyResult:
    """Write the params of a recorded run into params.yaml (comments kept); report the changes."""
    import yaml

    from mlops.config.models import Params

    root = Path(root).resolve()
    record = RunStore(root).get(run_id)
    path = root / PARAMS_FILE
    if not force and path.exists() and PARAMS_FILE in git.changed_files(root):
        raise GitStateError(
            f"{PARAMS_FILE} has uncommitted changes that applying run {record.id} would replace",
            "Commit or stash them first, or use --force.",
        )
    y = _yaml()
    text = limits.read_text(path, "params.yaml") if path.exists() else ""
    limits.safe_load(text, "params.yaml")  # size and aliases checked before ruamel reads it
    data = y.load(text) if text.strip() else None
    if data is None:
        from ruamel.yaml.comments import CommentedMap

        data = CommentedMap()
    changes: list[str] = []
    _sync(data, record.params or {}, "", changes)
    if changes:
        buf = io.StringIO()
        y.dump(data, buf)
        new_text = buf.getvalue()
        try:
            Params.model_validate(yaml.safe_load(new_text) or {})
        except ValueError as exc:
            raise UsageError(f"the params of run {record.id} are no longer valid: {exc}") from None
        if flatten(yaml.safe_load(new_text) or {}) != flatten(record.params or {}):
            raise UsageError(f"could not write the params of run {record.id} exactly")
        atomic_write_text(path, new_text)
    return ApplyResult(record.id, changes)

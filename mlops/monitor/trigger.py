"""`mlops watch` (`mlops run --if-new-data`): retrain when the ingest source holds new data.

Each ingest stage's source is checked cheaply against what the last run read (its entry in
`dvc.lock`, which the results commit keeps in git):

- a file: its size, then its md5 (DVC's hash), against the lock's;
- a directory: its number of files and total size against the lock's (`nfiles`, `size`);
- with a `span:`: rows whose span column is newer than the span's end (`to`);
- a packaged dataset (`package:`, `sklearn:`): never new; a URL: not checked (said so).

New data starts the monitor's retrain path (`mlops.monitor.actions`): move the span, run the
pipeline (recorded as kind `retrain`), and when the gates pass commit, register and deploy
`monitoring.retrain.deploy` (staging). No new data: nothing is written.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from mlops.errors import MlopsError


@dataclass
class SourceCheck:
    """One ingest stage's source: is there new data, and why (not)."""

    stage: str
    source: str
    kind: str  # file | directory | span | package | url | missing
    new: bool
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class WatchResult:
    """What `mlops watch` found and did."""

    checks: list[SourceCheck] = field(default_factory=list)
    action: dict[str, Any] | None = None  # the retrain (None: no new data, or a dry run)
    dry_run: bool = False

    @property
    def new(self) -> bool:
        return any(c.new for c in self.checks)

    @property
    def failed(self) -> bool:
        return bool(self.action) and self.action.get("status") == "failed"

    def to_dict(self) -> dict[str, Any]:
        return {
            "new_data": self.new,
            "checks": [c.to_dict() for c in self.checks],
            "action": self.action,
            "dry_run": self.dry_run,
        }


def _lock_deps(root: Path) -> dict[str, dict[str, dict[str, Any]]]:
    """`{stage: {dep path: entry}}` from dvc.lock ({} when there is none or it is unreadable)."""
    import yaml

    try:
        data = yaml.safe_load((root / "dvc.lock").read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        return {}
    out: dict[str, dict[str, dict[str, Any]]] = {}
    stages = data.get("stages") if isinstance(data, dict) else None
    for name, st in (stages or {}).items():
        deps = st.get("deps") if isinstance(st, dict) else None
        out[str(name)] = {
            str(d["path"]): d for d in deps or [] if isinstance(d, dict) and "path" in d
        }
    return out


def _md5(path: Path) -> str:
    h = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def _listing(path: Path) -> tuple[int, int]:
    """(files, bytes) under a directory, as DVC counts them (hidden files included)."""
    files = size = 0
    for p in path.rglob("*"):
        if p.is_file() and not p.is_symlink():
            files += 1
            size += p.stat().st_size
    return files, size


def _file_changed(path: Path, entry: dict[str, Any] | None) -> tuple[bool, str]:
    if entry is None:
        return True, "no run has read it yet (not in dvc.lock)"
    if path.is_dir():
        files, size = _listing(path)
        if (files, size) != (entry.get("nfiles"), entry.get("size")):
            return True, (
                f"{files} files, {size} bytes; the last run read {entry.get('nfiles')} files, "
                f"{entry.get('size')} bytes"
            )
        return False, f"the same {files} files ({size} bytes) the last run read"
    size = path.stat().st_size
    if entry.get("size") is not None and size != entry.get("size"):
        return True, f"{size} bytes; the last run read {entry.get('size')}"
    digest = _md5(path)
    if digest != entry.get("md5"):
        return True, f"md5 {digest[:12]}; the last run read {str(entry.get('md5'))[:12]}"
    return False, "the same bytes the last run read (md5)"


def _span_check(project: Any, name: str, args: Any) -> SourceCheck:
    from mlops.monitor.actions import _new_span

    span = _new_span(project, args, "widen")
    newest, end = span["newest"], span["to"]
    if end is None:
        return SourceCheck(name, args.source, "span", False, "the span has no end: it reads all")
    try:
        newer = newest > end
    except TypeError:
        newer = str(newest) > str(end)
    if newer:
        return SourceCheck(
            name, args.source, "span", True, f"{span['column']} reaches {newest}, past {end}"
        )
    return SourceCheck(
        name, args.source, "span", False, f"nothing after {span['column']} {end} (newest {newest})"
    )


def check_sources(project: Any) -> list[SourceCheck]:
    """Each ingest stage's source against the last run's (see the module docstring)."""
    from mlops.config.models import IngestWith
    from mlops.config.resolve import NON_FILE_SOURCES, norm

    lock = _lock_deps(project.root)
    out = []
    for name, st in project.pipeline.stages.items():
        if st.uses != "ingest":
            continue
        args = IngestWith(**st.with_)
        src = args.source
        if src.startswith(NON_FILE_SOURCES):
            out.append(SourceCheck(name, src, "package", False, "a packaged dataset never changes"))
            continue
        if "://" in src:
            out.append(SourceCheck(name, src, "url", False, "URL sources are not checked"))
            continue
        if args.span is not None:
            out.append(_span_check(project, name, args))
            continue
        path = project.path(src)
        if not path.exists():
            out.append(SourceCheck(name, src, "missing", False, f"{src} does not exist"))
            continue
        new, reason = _file_changed(path, lock.get(name, {}).get(norm(src)))
        kind = "directory" if path.is_dir() else "file"
        out.append(SourceCheck(name, src, kind, new, reason))
    return out


def watch(
    root: Path | str = ".",
    *,
    dry_run: bool = False,
    push: bool | None = None,
    remote: str = "origin",
) -> WatchResult:
    """Check the sources; on new data, retrain (run, commit, register, deploy staging)."""
    from mlops.config import load_project
    from mlops.monitor import actions

    project = load_project(root)
    result = WatchResult(check_sources(project), dry_run=dry_run)
    if not result.new:
        return result
    reason = "new data: " + "; ".join(f"{c.source} ({c.reason})" for c in result.checks if c.new)
    deploy_env = project.pipeline.monitoring.retrain.deploy or "staging"
    try:
        plan = actions._plan_retrain(SimpleNamespace(env=deploy_env), project, reason)
    except MlopsError as exc:
        result.action = {"kind": "retrain", "status": "failed", "error": exc.message,
                         "next_step": exc.hint or ""}  # fmt: skip
        return result
    if dry_run:
        result.action = plan.to_dict("dry run: nothing was done")
        return result
    result.action = actions.execute(plan, project, push=push, remote=remote)
    return result

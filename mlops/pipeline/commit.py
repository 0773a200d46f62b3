"""`mlops commit`: put a run's results into git, after pushing data and models to the DVC remote.

What a run changes and git tracks: `dvc.yaml`, `dvc.lock`, the `.gitignore` files DVC maintains,
outputs kept in git (`cache: false`: metrics, reports), and the inputs the lock now describes
(`pipeline.yaml`, params files, git-tracked dependencies such as the data contract). Other changes
in the work tree are left alone and reported. Data and models are pushed to the DVC remote
*before* the commit, so a commit never points at data that exists nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlops.adapters import dvc, git, lock
from mlops.config import PARAMS_FILE, PIPELINE_FILE, Project, limits
from mlops.errors import GitStateError, MlopsError, UsageError
from mlops.pipeline.outcome import read_lock
from mlops.pipeline.records import RunRecord, RunStore
from mlops.pipeline.runner import ensure_project

LOG = Path(".mlops/logs/commit.log")
ALWAYS: tuple[str, ...] = (
    "dvc.yaml", "dvc.lock", PIPELINE_FILE, PARAMS_FILE, ".dvc/config", ".dvcignore",
)  # fmt: skip
ALWAYS += ("reports/model-card.md", "reports/model-card.html")  # mlops.reports.card


@dataclass
class CommitResult:
    commit: str | None  # None when there was nothing to commit
    files: list[str] = field(default_factory=list)
    left_out: list[str] = field(default_factory=list)  # changed, but not the pipeline's
    files_pushed: int = 0
    message: str = ""
    run_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def pipeline_paths(project: Project) -> tuple[set[str], set[str]]:
    """(files or directories git should hold for a run, DVC-cached outputs)."""
    keep = set(ALWAYS)
    cached: set[str] = set()
    for st in project.stages.values():
        keep.update(st.deps)
        for out in st.outs:
            (cached if out.cache else keep).add(out.path)
        for p in st.params:
            if isinstance(p, dict):
                keep.update(p)
    return keep - cached, cached


def _belongs(path: str, keep: set[str]) -> bool:
    if path.rsplit("/", 1)[-1] == ".gitignore":
        return True
    return any(path == p or path.startswith(p.rstrip("/") + "/") for p in keep)


def _flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(data, dict):
        return {prefix: data}
    out: dict[str, Any] = {}
    for k, v in data.items():
        out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
    return out


def _lock_params(lock: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for body in lock.values():
        for file, values in ((body or {}).get("params") or {}).items():
            if file == PIPELINE_FILE:
                continue
            out.update(_flatten(values))
    return out


def param_changes(root: Path) -> list[str]:
    """`train.C: 1.0 -> 0.3` for params dvc.lock records differently from HEAD's dvc.lock."""
    text = git.show_file(root, "HEAD", "dvc.lock") if git.head(root) else None
    head_lock = limits.safe_load(text, "dvc.lock (HEAD)") if text else None
    before_lock = head_lock.get("stages", {}) if isinstance(head_lock, dict) else {}
    if not before_lock:
        return []  # the first run: everything is new, nothing "changed"
    before, after = _lock_params(before_lock), _lock_params(read_lock(root))
    return [
        f"{k}: {before.get(k, '<none>')} -> {after.get(k, '<none>')}"
        for k in sorted(set(before) | set(after))
        if before.get(k) != after.get(k)
    ]


def summarise(project: Project, record: RunRecord | None, files: list[str]) -> str:
    """The commit message: headline metrics first, then what ran and changed."""
    name = project.pipeline.model.name
    metrics = {
        k: v
        for k, v in (record.metrics if record else {}).items()
        if isinstance(v, int | float) and not isinstance(v, bool) and k != "test_rows"
    }
    gated = [g.get("metric") for v in (record.verdict if record else {}).values()
             for g in (v or {}).get("gates", [])]  # fmt: skip
    headline = [k for k in dict.fromkeys(gated) if k in metrics] or list(metrics)
    shown = " ".join(f"{k}={metrics[k]:.4g}" for k in headline[:3])
    title = f"Run results of {name}" + (f": {shown}" if shown else "")
    body: list[str] = []
    if record is not None:
        ran = [s["name"] for s in record.stages if s.get("status") in ("ran", "cached")]
        body.append(f"Run {record.id} ({record.outcome}); stages run: {', '.join(ran) or 'none'}.")
        verdicts = list((record.verdict or {}).values())
        if verdicts:
            blessed = all(v.get("blessed") for v in verdicts)
            body.append("Quality gates: " + ("passed (blessed)." if blessed else "FAILED."))
    changes = param_changes(project.root)
    if changes:
        body.append("Params changed: " + "; ".join(changes) + ".")
    body.append("Files: " + ", ".join(files) + ".")
    trailer = f"\n\nMlops-Run: {record.id}" if record is not None else ""
    return title + "\n\n" + "\n".join(body) + trailer + "\n"


@lock.locked
def commit_results(
    root: Path | str = ".", *, message: str | None = None, push_data: bool = True
) -> CommitResult:
    """Push data and models to the DVC remote, then commit the run's files (see module doc)."""
    project = ensure_project(Path(root))
    root = project.root
    changed_stages = dvc.status(root)
    if changed_stages:
        names = ", ".join(changed_stages)
        raise GitStateError(
            f"the work tree does not match dvc.lock (changed: {names}); committing now would "
            "record results that no run produced",
            "Run `mlops run` first (or `mlops run --commit`).",
        )
    keep, _ = pipeline_paths(project)
    changed = git.changed_files(root, untracked=True)
    files = sorted(p for p in changed if _belongs(p, keep))
    left_out = sorted(p for p in changed if p not in files)
    pushed = 0
    if push_data:
        extra = dvc.remote_plugin_missing(project.pipeline.remote.url)
        if extra is not None:
            raise UsageError(
                f"the remote {project.pipeline.remote.url} needs DVC's {extra} plugin, which is "
                "not installed; nothing was committed",
                f"pip install 'dvc[{extra}]'" + (" (or mlops' s3 extra)" if extra == "s3" else ""),
            )
        try:
            pushed = dvc.push(root, root / LOG)
        except MlopsError as exc:
            raise GitStateError(
                f"could not push data and models to the DVC remote: {exc.message}; nothing was "
                "committed",
                f"Check `remote:` in pipeline.yaml (and the log {LOG}), then run again.",
            ) from None
    try:
        record: RunRecord | None = RunStore(root).get("latest")
    except UsageError:
        record = None
    result = CommitResult(None, files, left_out, pushed, run_id=record.id if record else None)
    if not files:
        return result
    result.message = message or summarise(project, record, files)
    git.add(root, files)
    git.run(root, "commit", "-q", "-F", "-", "--only", "--", *files, input=result.message)
    result.commit = git.head(root)
    return result

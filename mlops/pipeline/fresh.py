"""A no-op run without starting DVC: a stamp of file signatures taken after a clean run.

DVC decides whether a file changed by its (inode, mtime, size) signature and re-hashes only when
that changes (its "state" database). After a run in which DVC reproduced or verified every stage,
mlops records the same signature of every file those stages read or write, of `pipeline.yaml`,
`params.yaml`, `dvc.yaml`, `dvc.lock` and `.dvc/config`, the listing of every tracked directory,
and the commit each `not_worse_than` baseline pointed at. If on the next run all of them are
unchanged, DVC would find nothing to do either, and mlops skips starting it (and skips loading
the config models: with pipeline.yaml unchanged, the stamp knows the stage graph). Any
difference, however small, falls back to the full path, where DVC decides with hashes.

This module stays light (no pydantic, no DVC): `mlops run` consults it before loading anything.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops import __version__
from mlops.config.yamlfile import atomic_write_text
from mlops.pipeline.baseline import current_commit

if TYPE_CHECKING:
    from mlops.config import Project
    from mlops.pipeline.outcome import Layout

STAMP = Path(".mlops/state/fresh.json")
FIXED = ("dvc.yaml", "dvc.lock", "pipeline.yaml", "params.yaml", ".dvc/config")


def _sig(path: str) -> list[int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [st.st_size, st.st_mtime_ns, st.st_ino]


def _listing(path: str) -> list[str] | None:
    try:
        return sorted(os.listdir(path))
    except OSError:
        return None


def _walk(root: Path, rel: str, files: dict[str, Any]) -> None:
    full = os.path.join(root, rel)
    if os.path.isdir(full):
        files[rel + "/"] = _listing(full)
        for dirpath, dirnames, filenames in os.walk(full):
            dirnames.sort()
            rel_dir = os.path.relpath(dirpath, root)
            if rel_dir != rel:
                files[rel_dir + "/"] = sorted(dirnames + filenames)
            for name in sorted(filenames):
                p = os.path.join(dirpath, name)
                files[os.path.relpath(p, root)] = _sig(p)
    else:
        files[rel] = _sig(full)


def _tracked_paths(project: Project, stages: list[str]) -> list[str]:
    paths: list[str] = list(FIXED)
    for name in stages:
        st = project.stages[name]
        for entry in st.params:
            if isinstance(entry, dict):
                paths += list(entry)
        paths += st.deps + st.out_paths
    return list(dict.fromkeys(paths))


def _cacheable(project: Project, name: str) -> bool:
    st = project.stages[name]
    return bool(st.deps or st.params) and not st.frozen


def _baselines(project: Project, stages: list[str]) -> list[dict[str, Any]]:
    """The baseline entries (name, kind, commit) the evaluate stages' baseline files hold."""
    out: list[dict[str, Any]] = []
    for name in stages:
        st = project.stages[name]
        path = getattr(st.args, "baseline", None) if st.kind == "evaluate" else None
        if not path:
            continue
        try:
            data = json.loads((project.root / path).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        for entry in data.values():
            out.append({k: entry.get(k) for k in ("name", "kind", "commit")})
    return out


def write_stamp(project: Project, clean: list[str], layout: Layout) -> None:
    """Record that every stage in `clean` is up to date in the current workspace."""
    from mlops.config import stage_graph, topological

    clean = [n for n in clean if _cacheable(project, n)]
    files: dict[str, Any] = {}
    for rel in _tracked_paths(project, clean):
        _walk(project.root, rel, files)
    data = {
        "mlops": __version__,
        "model": project.pipeline.model.name,
        "clean": sorted(clean),
        "order": topological(project.stages),
        "upstream": {k: sorted(v) for k, v in stage_graph(project.stages).items()},
        "layout": layout.to_dict(),
        "baselines": _baselines(project, clean),
        "files": files,
    }
    atomic_write_text(project.root / STAMP, json.dumps(data, separators=(",", ":")))


def clear_stamp(root: Path) -> None:
    (Path(root) / STAMP).unlink(missing_ok=True)


def load_stamp(root: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((Path(root) / STAMP).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    needed = ("clean", "order", "upstream", "layout", "files")
    if data.get("mlops") != __version__ or any(k not in data for k in needed):
        return None
    return data


def plan_for(stamp: dict[str, Any], targets: list[str] | None) -> list[str] | None:
    """Stages to run for `targets` (and their upstream), in run order; None for an unknown one."""
    order: list[str] = stamp["order"]
    if not targets:
        return list(order)
    upstream: dict[str, list[str]] = stamp["upstream"]
    if any(t not in upstream for t in targets):
        return None
    needed: set[str] = set()
    todo = list(targets)
    while todo:
        name = todo.pop()
        if name not in needed:
            needed.add(name)
            todo += upstream[name]
    return [n for n in order if n in needed]


def files_unchanged(root: Path, stamp: dict[str, Any]) -> bool:
    """Every recorded signature and directory listing is as it was."""
    for rel, recorded in stamp["files"].items():
        full = os.path.join(root, rel)
        now = _listing(full.rstrip("/")) if rel.endswith("/") else _sig(full)
        if now != recorded:
            return False
    return True


def baselines_unchanged(root: Path, stamp: dict[str, Any]) -> bool:
    """Each `not_worse_than` baseline still points at the commit it pointed at."""
    model = stamp.get("model", "")
    return all(current_commit(root, e, model) == e["commit"] for e in stamp.get("baselines", []))


def fresh_plan(root: Path, targets: list[str] | None) -> tuple[list[str], dict] | None:
    """The plan and the stamp when the stamp proves every stage of the plan up to date."""
    stamp = load_stamp(root)
    if stamp is None:
        return None
    plan = plan_for(stamp, targets)
    if plan is None or not set(plan) <= set(stamp["clean"]):
        return None
    if not files_unchanged(root, stamp) or not baselines_unchanged(root, stamp):
        return None
    return plan, stamp

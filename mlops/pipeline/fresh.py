"""A no-op run without starting DVC: a stamp of file signatures taken after a clean run.

DVC decides whether a file changed by its (inode, mtime, size) signature and re-hashes only when
that changes (its "state" database). After a run in which DVC reproduced or verified every stage,
mlops records the same signature of every file those stages read or write, of `dvc.yaml`,
`dvc.lock` and of the params files. If on the next run every signature is identical and no file was
added to or removed from a tracked directory, DVC would find nothing to do either, and mlops skips
starting it (about 1 s). Any difference, however small, falls back to DVC, which decides with
hashes.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from mlops import __version__
from mlops.config import Project
from mlops.config.resolve import PARAMS_FILE, PIPELINE_FILE
from mlops.config.yamlfile import atomic_write_text

STAMP = Path(".mlops/state/fresh.json")
FIXED = ("dvc.yaml", "dvc.lock", PIPELINE_FILE, PARAMS_FILE, ".dvc/config")


def _sig(path: str) -> list[int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [st.st_size, st.st_mtime_ns, st.st_ino]


def _walk(root: Path, rel: str, files: dict[str, Any]) -> None:
    full = os.path.join(root, rel)
    if os.path.isdir(full):
        files[rel + "/"] = sorted(os.listdir(full))
        for dirpath, dirnames, filenames in os.walk(full):
            dirnames.sort()
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


def _snapshot(project: Project, stages: list[str]) -> dict[str, Any]:
    files: dict[str, Any] = {}
    for rel in _tracked_paths(project, stages):
        _walk(project.root, rel, files)
    return files


def _cacheable(project: Project, name: str) -> bool:
    st = project.stages[name]
    return bool(st.deps or st.params) and not st.frozen


def write_stamp(project: Project, clean: list[str]) -> None:
    """Record that every stage in `clean` is up to date in the current workspace."""
    clean = [n for n in clean if _cacheable(project, n)]
    data = {
        "mlops": __version__,
        "clean": sorted(clean),
        "files": _snapshot(project, clean),
    }
    atomic_write_text(project.root / STAMP, json.dumps(data, separators=(",", ":")))


def clear_stamp(project: Project) -> None:
    (project.root / STAMP).unlink(missing_ok=True)


def is_fresh(project: Project, stages: list[str]) -> bool:
    """True only when the stamp proves every stage in `stages` up to date; False when unsure."""
    try:
        data = json.loads((project.root / STAMP).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if data.get("mlops") != __version__ or not set(stages) <= set(data.get("clean", [])):
        return False
    recorded = data.get("files", {})
    current = _snapshot(project, stages)
    # every path we track now must match; a path tracked now but not then means config changed
    return all(recorded.get(k, "missing") == v for k, v in current.items())

"""Every path pipeline.yaml names stays inside the repository, symbolic links included.

DVC deletes and rewrites a stage's outputs and hashes its dependencies: an `outs` path that goes
through a symlinked directory (`reports -> /home/me`), climbs out with `..` or is absolute would
let a run delete or overwrite files anywhere the user can write. So `mlops check` (and with it
every command that starts DVC) resolves each `deps`, `outs`, `metrics`, `plots` and params-file
path, and the relative `pin:`/`target:` paths of environments, following symlinks, and refuses
any that ends outside the repository, naming the key (`stages.train.outs[0]`) and its line.

Not refused: URLs (`s3://...`: DVC remote data and object-storage sources are not files here),
the `package:`/`sklearn:` sources, and an environment's `target:` given as an absolute path or a
URL (a deployment target is usually outside the repository on purpose: `/srv/models/prod`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mlops.config.resolve import NON_FILE_SOURCES, ResolvedStage, norm
from mlops.config.yamlfile import Loc

_GLOB = "*?["
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+:/")  # `s3://b/k`, also as `norm` leaves it: `s3:/b/k`


def is_url(path: str) -> bool:
    """True for a URL (`s3://bucket/key`), which is not a file of this machine."""
    return bool(_URL.match(path))


def escape(root: Path, rel: str) -> str | None:
    """Why repository path `rel` ends outside `root` (absolute, `..`, or through a symlink), or
    None when it stays inside (or is not a file path: a URL, a built-in source)."""
    if is_url(rel) or rel.startswith(NON_FILE_SOURCES):
        return None
    if any(c in rel for c in _GLOB):  # a glob: check the directory before the first pattern
        rel = os.path.dirname(rel[: min(rel.index(c) for c in _GLOB if c in rel)]) or "."
    if os.path.isabs(rel):
        return "it is an absolute path"
    real_root = Path(root).resolve()
    lexical = os.path.normpath(os.path.join(real_root, rel))
    if not _inside(real_root, Path(lexical)):
        return "it climbs out with '..'"
    resolved = (real_root / rel).resolve(strict=False)
    if not _inside(real_root, resolved):
        return f"it resolves through a symbolic link to {resolved}"
    return None


def _inside(root: Path, path: Path) -> bool:
    return path == root or path.is_relative_to(root)


def _entry_names(entry: Any) -> list[str]:
    if isinstance(entry, str):
        return [entry]
    if isinstance(entry, dict):
        return [k for k in entry if isinstance(k, str)]
    return []


def _key_of(raw_stage: Any, path: str) -> Loc:
    """Where in a stage's raw mapping `path` is written (`outs`, 0) / (`with`, `output`)."""
    if not isinstance(raw_stage, dict):
        return ()
    for key in ("outs", "metrics", "plots", "deps"):
        entries = raw_stage.get(key)
        for i, entry in enumerate(entries if isinstance(entries, list) else []):
            if any(norm(n) == path for n in _entry_names(entry)):
                return (key, i)
    args = raw_stage.get("with")
    for key, value in args.items() if isinstance(args, dict) else []:
        if isinstance(value, str) and norm(value) == path:
            return ("with", key)
    return ()


def check_paths(
    root: Path,
    raw: dict[str, Any],
    stages: dict[str, ResolvedStage],
    issue: Callable[[Loc, str], None],
) -> set[str]:
    """Report (through `issue(loc, message)`) every path of the resolved stages and of the
    environments that ends outside `root`; returns those paths."""
    raw_stages = raw.get("stages")
    if not isinstance(raw_stages, dict):
        raw_stages = {}
    bad: set[str] = set()
    for st in stages.values():
        named: list[tuple[str, str]] = [("output", o.path) for o in st.outs]
        named += [("dependency", d) for d in st.deps]
        for what, path in named:
            why = escape(root, path)
            if why:
                bad.add(path)
                loc = ("stages", st.name, *_key_of(raw_stages.get(st.name), path))
                issue(
                    loc,
                    f"{what} {path!r} is outside the repository: {why}; use a path "
                    "inside the repository (a relative path, no link out of it)",
                )
        for i, entry in enumerate(st.params):
            for file in entry if isinstance(entry, dict) else []:
                why = escape(root, file)
                if why:
                    bad.add(file)
                    issue(
                        ("stages", st.name, "params", i),
                        f"params file {file!r} is outside the repository: {why}",
                    )
    envs = raw.get("environments")
    for env, spec in envs.items() if isinstance(envs, dict) else []:
        for key in ("pin", "target"):
            value = spec.get(key) if isinstance(spec, dict) else None
            if not isinstance(value, str) or (key == "target" and os.path.isabs(value)):
                continue  # an absolute deployment target is outside on purpose
            why = escape(root, value)
            if why:
                bad.add(value)
                issue(
                    ("environments", env, key),
                    f"{key} {value!r} is outside the repository: {why}"
                    + ("; give an absolute path to deploy outside it" if key == "target" else ""),
                )
    return bad

"""`mlops status`: which stages are stale, and why (dependency, param, command or output)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mlops.adapters import dvc
from mlops.config import stage_graph, topological
from mlops.pipeline import fresh
from mlops.pipeline.outcome import read_lock
from mlops.pipeline.runner import ensure_project, prepare


@dataclass
class StageStatus:
    name: str
    state: str  # up to date | changed | upstream changed | never run
    reasons: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _leaf_diff(old: Any, new: Any, prefix: str) -> list[str]:
    """`train.C: 1.0 -> 0.5` for every leaf that differs between two param values."""
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[str] = []
        for key in list(old) + [k for k in new if k not in old]:
            out += _leaf_diff(old.get(key, "<absent>"), new.get(key, "<absent>"), f"{prefix}.{key}")
        return out
    return [] if old == new else [f"param {prefix}: {old!r} -> {new!r}"]


def _param_reasons(root: Path, lock_params: dict[str, Any], file: str, keys: dict) -> list[str]:
    from mlops.config.yamlfile import read_yaml

    try:
        current = read_yaml(root / file, with_lines=False).data or {}
    except Exception:
        current = None
    out: list[str] = []
    for key, state in keys.items():
        old = lock_params.get(file, {}).get(key, "<absent>")
        new: Any = current
        for part in key.split("."):
            new = new.get(part, "<absent>") if isinstance(new, dict) else "<absent>"
        diff = _leaf_diff(old, new, key) if current is not None else []
        out += diff or [f"param {key} ({file}) {state}"]
    return out


def _reasons(changes: list[Any], root: Path, lock_params: dict[str, Any]) -> list[str]:
    """DVC's status entries -> readable reasons."""
    out: list[str] = []
    for change in changes:
        if isinstance(change, str):
            out.append(
                {"changed command": "command changed", "always changed": "always runs"}.get(
                    change, change
                )
            )
            continue
        for kind, items in change.items():
            what = kind.replace("changed ", "")
            if not isinstance(items, dict):
                out.append(f"{what}: {items}")
                continue
            for path, state in items.items():
                if isinstance(state, dict):  # params: {file: {key: state}}
                    out += _param_reasons(root, lock_params, path, state)
                else:
                    out.append(f"{what[:-1] if what.endswith('s') else what} {path} {state}")
    return out


def project_status(root: Path | str = ".") -> list[StageStatus]:
    project = ensure_project(Path(root))
    prepare(project, project.root / ".mlops" / "logs" / "status.log")
    order = topological(project.stages)
    if fresh.fresh_plan(project.root, None) is not None:
        return [StageStatus(n, "up to date") for n in order]
    lock = read_lock(project.root)
    changes = dvc.status(project.root)
    graph = stage_graph(project.stages)
    result: dict[str, StageStatus] = {}
    for name in order:
        key = next((k for k in changes if k == name or k.endswith(f":{name}")), None)
        if name not in lock:
            result[name] = StageStatus(name, "never run", ["no entry in dvc.lock"])
        elif key is not None:
            reasons = _reasons(changes[key], project.root, lock[name].get("params", {}))
            result[name] = StageStatus(name, "changed", reasons)
        else:
            stale_up = [u for u in sorted(graph[name]) if result[u].state != "up to date"]
            if stale_up:
                result[name] = StageStatus(
                    name, "upstream changed", [f"needs a rerun of {', '.join(stale_up)}"]
                )
            else:
                result[name] = StageStatus(name, "up to date")
    return list(result.values())

"""The no-op `mlops run`: when the freshness stamp proves nothing changed, record a run in which
every stage was skipped, without loading the config models or starting DVC (see `fresh`)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mlops.adapters import git
from mlops.adapters.dvc import StageEvent
from mlops.pipeline import fresh
from mlops.pipeline.outcome import Layout, RunResult, StageResult, finalize, load_yaml_file
from mlops.pipeline.records import RunRecord, new_run_id


def _params(root: Path) -> dict[str, Any]:
    try:
        data = load_yaml_file(root / "params.yaml")
    except OSError:
        return {}
    return data if isinstance(data, dict) else {}


def quick_run(
    root: Path | str = ".",
    targets: list[str] | None = None,
    *,
    on_event: Callable[[StageEvent], None] | None = None,
) -> RunResult | None:
    """A recorded no-op run, or None when the full path must decide (anything may have changed,
    an unknown stage was named, or no clean run was stamped yet)."""
    root = Path(root).resolve()
    found = fresh.fresh_plan(root, targets)
    if found is None:
        return None
    plan, stamp = found
    started = time.time()
    record = RunRecord(
        id=new_run_id(started),
        kind="run",
        started=started,
        targets=list(targets or []),
        git_commit=git.head(root),
        git_dirty=git.is_dirty(root),
        git_branch=git.branch(root),
        params=_params(root),
    )
    result = RunResult(record, [StageResult(n, "skipped") for n in plan], fast=True)
    if on_event:
        for name in plan:
            on_event(StageEvent(name, "end", "skipped"))
    layout = Layout(**stamp["layout"])
    return finalize(result, root, root, plan, layout)

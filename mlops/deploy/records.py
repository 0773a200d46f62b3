"""Deployments as run records (kind `deploy` or `rollback`), so that they travel with git.

A deployment target may live on another machine (CI's runner, a bucket): its `history.jsonl` is
not in every clone, the run records are (`mlops.pipeline.gitrecords`). `mlops lineage` and
`mlops envs` read these records for the deployments no local target knows of.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from mlops.errors import MlopsError
from mlops.pipeline.records import RunRecord, RunStore, new_run_id


def record_deploy(
    root: Path,
    env: str,
    *,
    started: float,
    result: Any | None = None,
    error: MlopsError | None = None,
    rollback: bool = False,
) -> RunRecord | None:
    """Save the record of one `mlops deploy` (its result, or the error that stopped it);
    None when there is nowhere to save it (never raises: a deploy's outcome stands)."""
    kind = "rollback" if rollback or (result is not None and result.rollback_from) else "deploy"
    if result is not None:
        extra = {
            "env": env,
            "name": result.name,
            "version": result.version,
            "previous": result.previous,
            "action": result.action,
            "source": result.source,
            "stage_tag": result.stage_tag,
            "registration_tag": result.registration_tag,
            "rollback_from": result.rollback_from,
        }
        outcome = "ok" if result.action == "deployed" else result.action
        message = (
            f"{result.version} deployed to {env}"
            + (f" (was {result.previous})" if result.previous else "")
            if result.action == "deployed"
            else f"{env} already runs {result.version}: nothing to do"
        )
        code, commit = 0, result.commit
    else:
        extra = {
            "env": env,
            "error": error.message if error else "",
            "hint": getattr(error, "hint", ""),
        }
        outcome, commit = "failed", None
        code = int(error.exit_code) if error is not None else 1
        message = f"deploy to {env} failed: {error.message if error else 'unknown error'}"
    record = RunRecord(
        id=new_run_id(started) + "-" + kind,
        kind=kind,
        started=started,
        ended=time.time(),
        outcome=outcome,
        exit_code=code,
        git_commit=commit,
        message=message,
        extra=extra,
    )
    try:
        RunStore(root).save(record)
    except (OSError, MlopsError):
        return None
    return record


def recorded_deployments(root: Path, env: str | None = None) -> list[RunRecord]:
    """Successful deploy and rollback records (of `env`), oldest first."""
    try:
        records = RunStore(root).select("(kind == deploy or kind == rollback) and outcome == ok")
    except (OSError, MlopsError):
        return []
    out = [r for r in records if env is None or r.extra.get("env") == env]
    return sorted(out, key=lambda r: r.started)


def iso_utc(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))

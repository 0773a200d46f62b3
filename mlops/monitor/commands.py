"""`mlops monitor` in a project: the live version, its log, the checks, the action, the record.

1. The environment's deployment target (`environments.ENV.target`) says which version is live
   (`current`); its bundle is verified and read (not loaded).
2. The version it ran before comes from the registry (stage tags), else from the target's
   `history.jsonl`: it is what a rollback goes back to, and what online performance is
   compared with.
3. The prediction log (`<target>/predictions/`, or `log_dir`) is read through its index.
4. The checks run (`mlops.monitor.checks`), the action is planned (`mlops.monitor.actions`),
   and carried out unless `dry_run`.
5. The run is recorded in `.mlops/runs.db` (kind `monitor`, outcome `ok`, `breach`, `empty` or
   `dry`) with the breaches and the action; a rollback gets its own record (kind `rollback`),
   a retrain's pipeline run is recorded as kind `retrain`; both carry the reason and the
   monitoring run's id.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from mlops.config.durations import describe_seconds, parse_duration
from mlops.errors import MlopsError, UsageError
from mlops.monitor.checks import LiveModel, MonitorReport, analyse
from mlops.monitor.logdata import read_columns
from mlops.monitor.window import Window
from mlops.registry.desired import previous_version


def resolve_window(since: str | None, default: str | None, now: float) -> Window:
    """`--since` (or `monitoring.window`) as a window ending now; the whole log when neither."""
    text = since if since is not None else default
    if text is None:
        return Window(None, now, "whole log")
    try:
        seconds = parse_duration(text)
    except ValueError as exc:
        where = "--since" if since is not None else "monitoring.window in pipeline.yaml"
        raise UsageError(f"{where}: {exc}", "For example --since 24h or --since 7d.") from None
    if seconds is None:
        return Window(None, now, "whole log")
    return Window(now - seconds, now, f"last {describe_seconds(seconds)}")


def _git_state(root: Path) -> tuple[str | None, bool | None, str | None]:
    """(commit, dirty, branch) of the work tree, or Nones outside git."""
    from mlops.adapters import git

    head = git.head(root) if git.toplevel(root) else None
    if head is None:
        return None, None, None
    return head, git.is_dirty(root), git.branch(root)


def _record(
    report: MonitorReport,
    project: Any,
    run_id: str,
    started: float,
    dry: bool,
    at: tuple[str | None, bool | None, str | None],
    notice: dict[str, Any] | None = None,
) -> None:
    """Save the monitor run (and a rollback's own record); `at` is the git state the monitor
    started from (a retrain commits, so the state after it is not where the checks ran)."""
    from mlops.pipeline.records import RunRecord, RunStore

    root = project.root
    perf = report.performance.get("online") or {}
    metrics: dict[str, Any] = {
        "rows": report.traffic.get("rows", 0),
        "requests": report.traffic.get("requests", 0),
        "labelled": perf.get("labelled", 0),
        "rejected_share": report.quality.get("rejected_share"),
        "error_rate": report.health.get("error_rate"),
        "latency_p99_ms": (report.health.get("latency_ms") or {}).get("p99"),
    }
    if perf.get("value") is not None:
        metrics[f"online_{perf['metric']}"] = perf["value"]
    if report.drift is not None:
        metrics["drift_share"] = round(report.drift.share, 6)
    outcome = "dry" if dry else ("breach" if report.breached else "empty" if report.empty else "ok")
    head, dirty, branch = at
    record = RunRecord(
        id=run_id,
        kind="monitor",
        started=started,
        ended=time.time(),
        outcome=outcome,
        exit_code=7 if report.breached else 0,
        git_commit=head,
        git_dirty=dirty,
        git_branch=branch,
        metrics={k: v for k, v in metrics.items() if v is not None},
        verdict={"breach": report.breached, "breaches": [b.to_dict() for b in report.breaches]},
        message=report.summary(),
        extra={
            "env": report.env,
            "version": report.version,
            "previous": report.previous,
            "window": report.window.to_dict(),
            "action": report.action,
            "log": report.log,
        }
        | ({"notify": {k: v for k, v in notice.items() if k != "notes"}} if notice else {}),
    )
    store = RunStore(root)
    store.save(record)
    action = report.action
    if action.get("kind") == "rollback" and not dry:
        details = action.get("details") or {}
        deployed = details.get("deploy") or {}
        store.save(
            RunRecord(
                id=run_id + "-rollback",
                kind="rollback",
                started=started,
                ended=time.time(),
                outcome="ok" if action.get("status") == "done" else "failed",
                exit_code=0 if action.get("status") == "done" else 6,
                git_commit=head,
                message=f"rolled {report.env} back from {details.get('from')} to "
                f"{details.get('to')}: {action.get('reason')}",
                extra={
                    "env": report.env,
                    "from": details.get("from"),
                    "to": details.get("to"),
                    "reason": action.get("reason"),
                    "monitor_run": run_id,
                    "stage_tag": deployed.get("stage_tag"),
                    "error": action.get("error"),
                },
            )
        )


def read_log(target: Any, log_dir: Path | str | None, log_url: str | None) -> Any:
    """The log to check: shipped segments at `log_url` (and the JSON log at `log_dir` when
    given too); else the JSON log (`log_dir` or `<target>/predictions`) plus any segments
    servers shipped to the target itself (`<target>/logs/`, `<target>/feedback/`)."""
    from mlops.monitor import segments

    if log_url is not None:
        shipped = segments.read_segments(segments.check_url(log_url))
        if log_dir is None:
            return shipped
        return segments.combine(read_columns(Path(log_dir)), shipped)
    if getattr(target, "is_remote", False):  # servers ship there: no JSON log on this host
        shipped = segments.read_segments(str(target.root))
        return (
            shipped if log_dir is None else segments.combine(read_columns(Path(log_dir)), shipped)
        )
    columns = read_columns(Path(log_dir) if log_dir else target.predictions_dir)
    root = str(target.root)
    if log_dir is None and segments.has_segments(root):
        columns = segments.combine(columns, segments.read_segments(root))
    return columns


def monitor_project(
    root: Path | str = ".",
    env: str | None = None,
    *,
    since: str | None = None,
    log_dir: Path | str | None = None,
    dry_run: bool = False,
    push: bool | None = None,
    remote: str = "origin",
    now: float | None = None,
    log_url: str | None = None,
) -> MonitorReport:
    """Monitor environment `env` (see the module docstring). Never raises on a breach: the
    report says so (`report.breached`) and the caller decides (the CLI exits 7)."""
    from mlops.config import load_project
    from mlops.deploy.target import DEPLOYMENT, open_target
    from mlops.monitor import actions
    from mlops.pipeline.records import new_run_id

    started = time.time()
    project = load_project(root)
    at = _git_state(project.root)
    envs = project.pipeline.environments
    if env is None or env not in envs:
        raise UsageError(
            f"unknown environment {env!r}" if env else "which environment? give --env ENV",
            f"pipeline.yaml defines: {', '.join(envs) or 'none'} (under `environments:`).",
        )
    spec = project.pipeline.monitoring
    window = resolve_window(since, spec.window, now if now is not None else started)
    spec_target = envs[env].target or f".mlops/envs/{env}"
    if "://" in spec_target:  # object storage: the live version is downloaded and verified
        from mlops.deploy.remote import open_any
        from mlops.deploy.target import NotDeployedError

        target = open_any(spec_target, where=f"environments.{env}.target")
        pointer = target.pointer()
        if pointer is None:
            raise NotDeployedError(
                f"nothing is deployed to {env} ({target.root})",
                f"Deploy first: mlops deploy --env {env}",
            )
        live_dir = target.scratch_dir("monitor-") / pointer["version"]
        target.download(pointer["version"], live_dir, pointer)
    else:
        target = open_target(project.root / spec_target)
        live_dir = target.require_current()
    live = LiveModel.read(live_dir, live_dir.name, extra_files=(DEPLOYMENT,))
    try:
        prev = previous_version(
            project.root, env, project=project, live=live.version, deployments=target.history()
        )
        previous, found_in = prev.version, prev.source
    except MlopsError:
        previous, found_in = None, ""
    if log_dir is not None and not Path(log_dir).is_dir():
        raise UsageError(
            f"no prediction log at {log_dir}",
            "Give the directory `mlops serve --log-dir` writes to (default: the environment's "
            "<target>/predictions, which needs no option).",
        )
    columns = read_log(target, log_dir, log_url)
    # per-chunk partial results kept between runs (mlops.monitor.partials): a scheduled run
    # recounts only the chunks that are new or changed
    cache = project.root / ".mlops" / "cache" / "monitor" / env
    report = analyse(columns, live, spec, window, env=env, previous=previous, cache=cache)
    if previous:
        report.notes.append(f"{previous} ran in {env} before {live.version} ({found_in})")
    run_id = new_run_id(started)
    report.run_id = run_id
    try:
        plan = actions.plan(report, project)
    except MlopsError as exc:  # e.g. the ingest span cannot be moved: still report the breach
        reason = "; ".join(b.message for b in report.breaches)
        plan = actions.Plan(
            "alert",
            f"{reason}. The {project.pipeline.monitoring.on_breach} action cannot be planned: "
            f"{exc.message}",
            ["report the breach (exit 7)"],
            {"hint": exc.hint or ""},
        )
    if dry_run:
        report.action = plan.to_dict("dry run: nothing was done")
    else:
        report.action = actions.execute(plan, project, push=push, remote=remote, monitor_run=run_id)
    notice = None
    if not dry_run:  # monitoring.notify: once per breach episode, once when it resolves
        from mlops.monitor.notify import monitor_notice

        notice = monitor_notice(project, report, run_id)
        report.notes.extend(notice.get("notes", []))
    _record(report, project, run_id, started, dry_run, at, notice)
    report.seconds = time.time() - started
    return report

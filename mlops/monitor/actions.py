"""What a breach starts (`monitoring.on_breach`): alert, retrain, or roll back.

- `alert`: the report and exit 7; nothing else.
- `retrain`: move the ingest stage's `span:` to the newest data of its source (`retrain.span`:
  widen, slide or keep), run the pipeline (recorded as kind `retrain` with the reason), and when
  its gates pass: commit the results, register a new version and deploy it to
  `retrain.deploy` (staging). A run that fails puts `pipeline.yaml`, `dvc.yaml`, `dvc.lock` and
  the outputs back as they were. A breach of service health alone is not retrained on.
- `rollback`: only when the live version does measurably worse online than the version before
  it (the `worse_than_previous` check): deploy that version again, which promotes it back
  through the registry (a stage tag with `rollback-from:`); a pinned environment also gets
  the merge request that pins it. Other breaches alert.

`plan()` says what would happen (`--dry-run` shows it); `execute()` does it and returns what
happened. Both are recorded with the monitoring run.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops.errors import GitStateError, MlopsError, UsageError

if TYPE_CHECKING:
    from mlops.config import Project
    from mlops.monitor.checks import MonitorReport

FIXED_BY_RETRAINING = (
    "input_drift",
    "prediction_drift",
    "data_quality",
    "performance",
    "worse_than_previous",
)


@dataclass
class Plan:
    """An action and why; `steps` are what it does (or did)."""

    kind: str  # none | alert | retrain | rollback
    reason: str
    steps: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self, status: str = "") -> dict[str, Any]:
        out: dict[str, Any] = {
            "kind": self.kind,
            "reason": self.reason,
            "steps": list(self.steps),
            "details": self.details,
        }
        if status:
            out["status"] = status
        return out


def plan(report: MonitorReport, project: Project) -> Plan:
    """The action `monitoring.on_breach` calls for, given what the report found."""
    spec = project.pipeline.monitoring
    if not report.breaches:
        return Plan("none", "no breach")
    checks = {b.check for b in report.breaches}
    reason = "; ".join(b.message for b in report.breaches)
    if spec.on_breach == "rollback":
        if "worse_than_previous" in checks and report.previous:
            return _plan_rollback(report, project, reason)
        cmp = report.performance.get("previous") or {}
        if not report.previous:
            why = f"no version ran in {report.env} before {report.version}"
        elif cmp.get("note"):
            why = cmp["note"]
        else:
            why = f"{report.version} is not measurably worse online than {report.previous}"
        return Plan(
            "alert",
            f"{reason}. on_breach is rollback, but {why}: nothing to roll back on",
            ["report the breach (exit 7)"],
        )
    if spec.on_breach == "retrain":
        if not checks & set(FIXED_BY_RETRAINING):
            return Plan(
                "alert",
                f"{reason}. Retraining does not fix service health: look at the service",
                ["report the breach (exit 7)"],
            )
        return _plan_retrain(report, project, reason)
    return Plan("alert", reason, ["report the breach (exit 7)"])


# ---- rollback -----------------------------------------------------------------------------------


def _plan_rollback(report: MonitorReport, project: Project, reason: str) -> Plan:
    env = report.env
    spec = project.pipeline.environments[env]
    steps = [
        f"deploy {report.previous} to {env} again (`mlops deploy --env {env} --rollback`): a "
        f"stage tag {project.pipeline.model.name}#{env}#N with rollback-from {report.version}, "
        f"then {env}'s current -> versions/{report.previous}"
    ]
    if spec.pin is not None:
        steps.append(
            f"open the merge request that pins {report.previous} in {spec.pin} (when the git "
            "remote takes it), so the next deploy keeps it"
        )
    return Plan(
        "rollback",
        reason,
        steps,
        {"env": env, "from": report.version, "to": report.previous},
    )


def _rollback(
    project: Project, p: Plan, push: bool | None, remote: str, progress: dict[str, Any]
) -> dict[str, Any]:
    from mlops.deploy.deployer import deploy

    env = p.details["env"]
    result = deploy(project.root, env, rollback=True, push=push, remote=remote)
    if result.version != p.details["to"]:
        raise GitStateError(
            f"the registry's previous version of {env} is {result.version}, not "
            f"{p.details['to']} as the monitor expected; it was deployed",
            "Check `mlops registry history` and roll back by hand if needed.",
        )
    done = progress["steps"]
    done.append(
        f"deployed {result.version} to {env} ({result.action}; stage tag "
        f"{result.stage_tag or '-'}"
        + (", pushed" if result.tag_pushed else ", local" if result.tag_pushed is False else "")
        + ")"
    )
    details = progress["details"]
    details["deploy"] = result.to_dict()
    spec = project.pipeline.environments[env]
    if spec.pin is not None:
        done.append(_pin_merge_request(project, p, remote, details))
    done += [f"note: {n}" for n in result.notes]
    return {"steps": done, "details": details}


def _pin_merge_request(project: Project, p: Plan, remote: str, details: dict[str, Any]) -> str:
    from mlops.deploy.repin import pin_merge_request

    line, request = pin_merge_request(
        project, p.details["env"], p.details["to"], p.details["from"], remote
    )
    if request is not None:
        details["merge_request"] = request
    return line


# ---- retrain ------------------------------------------------------------------------------------


def _scalar(v: Any) -> Any:
    return v.item() if hasattr(v, "item") else v


def _ingest_stage(project: Project) -> tuple[str, Any] | None:
    """(name, IngestWith) of the ingest stage to move: `retrain.stage`, else the one with a
    span, else the only ingest stage."""
    from mlops.config.models import IngestWith

    wanted = project.pipeline.monitoring.retrain.stage
    found = []
    for name, st in project.pipeline.stages.items():
        if st.uses == "ingest" and (wanted is None or name == wanted):
            found.append((name, IngestWith(**st.with_)))
    if wanted is not None and not found:
        known = [n for n, st in project.pipeline.stages.items() if st.uses == "ingest"]
        raise UsageError(
            f"monitoring.retrain.stage names {wanted!r}, which is not an ingest stage",
            f"Ingest stages in pipeline.yaml: {', '.join(known) or 'none'}.",
        )
    with_span = [f for f in found if f[1].span is not None]
    if with_span:
        return with_span[0]
    return found[0] if len(found) == 1 else None


def _new_span(project: Project, args: Any, mode: str) -> dict[str, Any]:
    """Where the span goes: the newest value of its column in the source."""
    from mlops.stages.ingest import load_source

    span = args.span
    df = load_source(args.source, project)
    if span.column not in df.columns:
        raise UsageError(
            f"the ingest span's column {span.column!r} is not in {args.source}",
            "Fix `span:` of the ingest stage in pipeline.yaml.",
        )
    values = df[span.column].dropna()
    if values.empty:
        raise UsageError(f"{args.source} has no values in {span.column!r}")
    newest = _scalar(values.max())
    old_from, old_to = span.from_, span.to
    new_from, new_to = old_from, newest
    note = ""
    if mode == "slide" and old_from is not None and old_to is not None:
        try:
            new_from = _scalar(newest - (old_to - old_from))
        except TypeError:
            note = "the span's values cannot be subtracted: widened instead of slid"
    changed = (new_from, new_to) != (old_from, old_to)
    if old_to is None:
        changed = new_from != old_from
        new_to = None
    return {
        "column": span.column,
        "from": old_from,
        "to": old_to,
        "new_from": new_from,
        "new_to": new_to,
        "newest": newest,
        "changed": changed,
        "note": note,
    }


def _span_text(a: Any, b: Any) -> str:
    return f"{'' if a is None else a}..{'' if b is None else b}"


def _plan_retrain(report: MonitorReport, project: Project, reason: str) -> Plan:
    cfg = project.pipeline.monitoring.retrain
    steps = []
    details: dict[str, Any] = {"env": report.env}
    found = _ingest_stage(project)
    if found is not None and found[1].span is not None and cfg.span != "keep":
        name, args = found
        span = _new_span(project, args, cfg.span)
        details.update(stage=name, span=span)
        if span["changed"]:
            steps.append(
                f"pipeline.yaml: stages.{name}.with.span {span['column']} "
                f"{_span_text(span['from'], span['to'])} -> "
                f"{_span_text(span['new_from'], span['new_to'])} (newest {span['column']} in "
                f"{args.source}: {span['newest']})" + (f"; {span['note']}" if span["note"] else "")
            )
        else:
            steps.append(
                f"the ingest span {span['column']} {_span_text(span['from'], span['to'])} "
                f"already reaches the newest data ({span['newest']}): rerun as it is"
            )
    else:
        steps.append("rerun the pipeline on what its sources hold now (no ingest span to move)")
    steps.append("mlops run (recorded as kind retrain, with the reason)")
    steps.append(
        "when the gates pass: mlops commit (data and model to the DVC remote, results to git)"
    )
    steps.append("mlops register (the next version, the reason in the tag message)")
    deploy_env = cfg.deploy
    if deploy_env and deploy_env in project.pipeline.environments:
        steps.append(f"mlops deploy --env {deploy_env}")
        details["deploy"] = deploy_env
    elif deploy_env:
        steps.append(f"no environment {deploy_env!r} in pipeline.yaml: not deployed")
    return Plan("retrain", reason, steps, details)


def _restore(project: Project, saved: dict[str, bytes | None]) -> None:
    """Put the work tree back as before the retrain: it was clean, so every tracked file as
    HEAD has it (pipeline.yaml, dvc.lock, reports kept in git), the files saved before, then
    the DVC-cached outputs as the lock records them."""
    from mlops.adapters import dvc, git
    from mlops.pipeline import fresh

    root = project.root
    git.run(root, "checkout", "HEAD", "--", ".", check=False)
    for rel, data in saved.items():
        path = root / rel
        if data is None:
            path.unlink(missing_ok=True)
        else:
            path.write_bytes(data)
    dvc.checkout(root, list(project.pipeline.stages), root / ".mlops/logs/monitor-restore.log")
    fresh.clear_stamp(root)


def _push_branch(root: Path, remote: str) -> str:
    from mlops.adapters import git
    from mlops.adapters.secrets import clip

    branch = git.branch(root)
    if branch is None:
        raise GitStateError(
            "HEAD is detached: the retrained results cannot be pushed to a branch",
            "Check out the default branch (CI: `git checkout -B $CI_COMMIT_BRANCH`).",
        )
    refspec = f"HEAD:refs/heads/{branch}"
    res = git.push(root, remote, [refspec], options=["ci.skip"])
    if res.code != 0:
        res = git.push(root, remote, [refspec])
    if res.code != 0:
        raise GitStateError(
            f"pushing the retrained results to {remote}/{branch} failed: "
            f"{clip(res.err.strip(), 300, keep='tail')}",
            "Pull, then run the monitor again (the retrain is committed locally).",
        )
    return f"pushed the commit to {remote}/{branch}"


def _retrain(
    project: Project,
    p: Plan,
    push: bool | None,
    remote: str,
    monitor_run: str | None,
    progress: dict[str, Any],
) -> dict[str, Any]:
    from mlops.adapters import git
    from mlops.config import load_project
    from mlops.config.yamlfile import atomic_write_text
    from mlops.pipeline.commit import commit_results
    from mlops.pipeline.experiments import set_params
    from mlops.pipeline.runner import run_pipeline
    from mlops.registry.register import register

    root = project.root
    dirty = git.changed_files(root, untracked=False)
    if dirty:
        raise GitStateError(
            "the work tree has uncommitted changes ("
            + ", ".join(dirty[:5])
            + ("..." if len(dirty) > 5 else "")
            + "): a retrain commits its results",
            "Commit or stash them, then run the monitor again.",
        )
    has_remote = git.remote_url(root, remote) is not None
    do_push = has_remote if push is None else push
    if do_push and not has_remote:
        raise GitStateError(f"no git remote {remote!r}: --push needs one", None)
    saved = {
        rel: ((root / rel).read_bytes() if (root / rel).exists() else None)
        for rel in ("pipeline.yaml", "dvc.yaml", "dvc.lock")
    }
    done: list[str] = progress["steps"]
    details: dict[str, Any] = progress["details"]
    span = details.get("span")
    if span and span["changed"]:
        stage = details["stage"]
        text = (root / "pipeline.yaml").read_text(encoding="utf-8")
        changes = {f"stages.{stage}.with.span.to": span["new_to"]}
        if span["new_from"] != span["from"]:
            changes[f"stages.{stage}.with.span.from"] = span["new_from"]
        text = set_params(text, changes)
        atomic_write_text(root / "pipeline.yaml", text)
        done.append(
            f"set the ingest span {span['column']} to "
            f"{_span_text(span['new_from'], span['new_to'])} in pipeline.yaml"
        )
    try:
        result = run_pipeline(
            root,
            kind="retrain",
            extra={"reason": p.reason, "monitor_run": monitor_run, "env": details["env"]},
        )
    except BaseException:
        _restore(project, saved)
        raise
    details["run"] = result.record.id
    details["metrics"] = result.record.metrics
    if result.error is not None:
        _restore(load_project(root), saved)
        done.append(f"run {result.record.id}: {result.record.outcome}; nothing was kept")
        return {
            "steps": done,
            "details": details,
            "status": "failed",
            "error": f"the retrained model was not kept: {result.error.message}",
            "next_step": "The workspace is as it was. Look at the run "
            f"(`mlops runs show {result.record.id}`), fix the data or the model, and retrain.",
        }
    shown = ", ".join(
        f"{k}={v:.4g}" for k, v in result.record.metrics.items() if isinstance(v, float)
    )
    done.append(f"run {result.record.id}: passed its gates ({shown})")
    message = f"Retrain {project.pipeline.model.name}: monitoring {details['env']} found " + (
        p.reason if len(p.reason) < 400 else p.reason[:397] + "..."
    )
    committed = commit_results(root, message=message)
    if committed.commit is None:
        done.append("the results did not change (no newer data): nothing to register")
        return {
            "steps": done,
            "details": details,
            "status": "nothing new",
            "next_step": "The committed model already learned from the newest data. If it is not "
            "the live one, register or deploy it (`mlops registry show`, `mlops deploy`); else "
            "add newer data, or adjust `monitoring.drift` if this traffic is the new normal.",
        }
    details["commit"] = committed.commit
    done.append(f"committed {committed.commit[:12]} ({len(committed.files)} files)")
    if do_push:
        done.append(_push_branch(root, remote))
    reg = register(
        root,
        push=do_push,
        remote=remote,
        message=f"retrained by mlops monitor ({details['env']}): {p.reason}"[:1000],
    )
    details["version"] = reg.version
    done.append(f"registered {reg.tag}" + (" (pushed)" if do_push else ""))
    deploy_env = details.get("deploy")
    if deploy_env:
        from mlops.deploy.deployer import deploy

        dep = deploy(root, deploy_env, push=do_push if has_remote else False, remote=remote)
        details["deployed"] = dep.to_dict()
        done.append(f"deployed {dep.version} to {deploy_env} ({dep.action})")
        done += [f"note: {n}" for n in dep.notes]
    return {"steps": done, "details": details, "status": "done"}


# ---- doing it ----------------------------------------------------------------------------------


def execute(
    p: Plan,
    project: Project,
    *,
    push: bool | None = None,
    remote: str = "origin",
    monitor_run: str | None = None,
) -> dict[str, Any]:
    """Carry the plan out; what happened (a failure is reported, not raised: the breach is
    the outcome that counts, and the report must reach the user)."""
    started = time.time()
    out = p.to_dict()
    if p.kind in ("none", "alert"):
        out["status"] = "done" if p.kind == "alert" else ""
        return out
    progress: dict[str, Any] = {"steps": [], "details": dict(p.details)}
    try:
        if p.kind == "retrain":
            got = _retrain(project, p, push, remote, monitor_run, progress)
        else:
            got = _rollback(project, p, push, remote, progress)
    except MlopsError as exc:  # what was done before the failure is reported with it
        out["planned"] = out.pop("steps")
        out.update(steps=progress["steps"], details=progress["details"])
        out.update(status="failed", error=exc.message, next_step=exc.hint or "")
        out["seconds"] = round(time.time() - started, 3)
        return out
    out["planned"] = out.pop("steps")
    out["steps"] = got["steps"]
    out["details"] = got["details"]
    out["status"] = got.get("status", "done")
    for key in ("error", "next_step"):
        if got.get(key):
            out[key] = got[key]
    out["seconds"] = round(time.time() - started, 3)
    return out

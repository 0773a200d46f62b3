"""`mlops run`: compile, reproduce through DVC (or prove nothing changed), record the run."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mlops.adapters import dvc, git, lock
from mlops.config import Project, load_project, stage_graph, topological
from mlops.errors import (
    DataValidationError,
    GateFailedError,
    Interrupted,
    MlopsError,
    StageFailedError,
    UsageError,
)
from mlops.pipeline import fresh
from mlops.pipeline.baseline import write_baselines
from mlops.pipeline.compile import write_dvc_yaml
from mlops.pipeline.outcome import (  # re-exported: the run's result types live in outcome
    LOG_ROOT,
    GateResult,
    Layout,
    RunResult,
    StageResult,
    finalize,
    gate_line,
    tail,
)
from mlops.pipeline.quick import quick_run
from mlops.pipeline.records import RunRecord, new_run_id

StageEvent = dvc.StageEvent
__all__ = ["GateResult", "RunResult", "StageEvent", "StageResult", "gate_line", "run_pipeline"]


def layout_of(project: Project) -> Layout:
    """Where each stage's metrics are, which stages evaluate, where the bundle is."""
    return Layout(
        metrics={
            name: [o.path for o in st.outs if o.kind == "metrics"]
            for name, st in project.stages.items()
        },
        evaluate=[name for name, st in project.stages.items() if st.kind == "evaluate"],
        bundle=project.pipeline.model.path,
    )


def ensure_project(root: Path) -> Project:
    """Load the config and check the repository is ready for DVC."""
    project = load_project(root)
    if git.toplevel(project.root) is None:
        raise UsageError(
            f"{project.root} is not inside a git repository",
            "Run `mlops init` here (it creates the git and DVC set-up), or `git init`.",
        )
    if not (project.root / ".dvc").is_dir():
        raise UsageError(
            f"DVC is not initialised in {project.root}",
            "Run `mlops init` (keeps your files) or `dvc init`.",
        )
    return project


def prepare(project: Project, log: Path) -> bool:
    """Write dvc.yaml when pipeline.yaml changed and keep DVC's default remote in sync.

    Also resolves the baselines of `not_worse_than` gates (`mlops.pipeline.baseline`).
    """
    compiled = write_dvc_yaml(project)
    write_baselines(project)
    remote = project.pipeline.remote
    if not dvc.remote_configured(project.root, remote.name, remote.url, remote.options):
        dvc.configure_remote(project.root, remote.name, remote.url, log, remote.options)
    return compiled


def error_block(path: str | Path | None, limit: int = 200) -> list[str]:
    """The lines of a stage log from its `error:` line on (a validation report lists every
    problem; the usual 12-line tail would cut it)."""
    lines = tail(path, 10_000)
    start = next((i for i, ln in enumerate(lines) if ln.startswith("error:")), None)
    if start is None:
        return []
    block = [lines[start][len("error:") :].strip()]
    for ln in lines[start + 1 : start + limit]:
        if ln.startswith("hint:"):
            break
        block.append(ln)
    return block


def _stage_error(failed: StageResult) -> MlopsError:
    text = "\n".join(ln for ln in failed.tail[-12:] if not ln.startswith(dvc.DVC_ERROR_PREFIX))
    hint = f"Full output: {failed.log}" if failed.log else None
    if failed.exit_status == 3:
        text = "\n".join(error_block(failed.log)) or text
        return DataValidationError(f"stage {failed.name!r} found invalid data:\n{text}", hint)
    if failed.exit_status == 4:
        return GateFailedError(f"stage {failed.name!r} failed a quality gate:\n{text}", hint)
    if failed.exit_status in (130, -2):  # the stage's process died of SIGINT: Ctrl-C
        return Interrupted(
            f"interrupted while stage {failed.name!r} ran",
            "dvc.lock and the stage's outputs were left as they were before this run.",
        )
    if failed.exit_status == 2:
        return UsageError(
            f"stage {failed.name!r} stopped on a configuration problem:\n{text}",
            (hint + ". " if hint else "") + "dvc.lock and the outputs were left as they were.",
        )
    return StageFailedError(
        failure_text(failed),
        (hint + ". " if hint else "")
        + "Outputs and dvc.lock were left as they were before this run; fix and rerun.",
    )


def failure_text(failed: StageResult) -> str:
    """Why a stage failed, in its own words: a built-in's `error:` block (exception type and
    message), the last lines a command wrote (its stderr tail), or DVC's reason when DVC
    stopped the stage before or after its command (a missing dependency or output, a params
    value it cannot hash)."""
    output = [ln for ln in failed.tail if not ln.startswith(dvc.DVC_ERROR_PREFIX)]
    block = error_block(failed.log)
    head = f"stage {failed.name!r} failed"
    if failed.exit_status is None:
        # the command never ran, or ran and DVC refused what it left behind
        text = f"{head}: DVC stopped it: {failed.error or 'no reason given'}"
        return text + (":\n" + "\n".join(output[-12:]) if output else "")
    head += f" (exit status {failed.exit_status})"
    if block:
        return f"{head}:\n" + "\n".join(block)
    if output:
        return f"{head}; the last lines it wrote:\n" + "\n".join(output[-12:])
    return f"{head} and wrote nothing to stdout or stderr" + (
        f" (DVC: {failed.error})" if failed.error else ""
    )


def preflight_hook(project: Project) -> Callable[[str], None]:
    """After each ingest stage: the columns, metrics and estimator pipeline.yaml names,
    checked against what ingest wrote (`mlops.config.preflight`), before the next stage."""
    from mlops.config.preflight import check_after_ingest

    def after(name: str) -> None:
        stage = project.stages.get(name)
        if stage is not None and stage.kind == "ingest":
            check_after_ingest(project, name)

    return after


def _propagate_would_run(project: Project, stages: list[StageResult]) -> None:
    """In a dry run DVC checks each stage against the workspace as it is, so a stage downstream
    of one that would run looks unchanged; it would run too once its inputs are rebuilt."""
    upstream = stage_graph(project.stages)
    would = {s.name for s in stages if s.status == "would run"}
    for s in stages:  # in run order, so upstream decisions come first
        if s.status == "skipped" and upstream.get(s.name, set()) & would:
            s.status = "would run"
            would.add(s.name)


@lock.locked
def run_pipeline(
    root: Path | str = ".",
    targets: list[str] | None = None,
    *,
    force: bool = False,
    dry: bool = False,
    kind: str = "run",
    on_event: Callable[[StageEvent], None] | None = None,
    record_root: Path | None = None,
    extra: dict[str, Any] | None = None,
) -> RunResult:
    """Run the pipeline (or `targets` and what they need); always returns a recorded result.

    `record_root` records the run (and keeps its logs) in another project than the one run:
    experiments run in a scratch copy and are recorded in the user's project. `extra` goes
    into the record as is (e.g. an experiment's overrides).
    """
    if not force and not dry and record_root is None and not extra and kind == "run":
        quick = quick_run(root, targets, on_event=on_event)
        if quick is not None:
            return quick
    project = ensure_project(Path(root))
    root = project.root
    home = Path(record_root).resolve() if record_root else root
    unknown = [t for t in targets or [] if t not in project.stages]
    if unknown:
        raise UsageError(
            f"unknown stage{'s' if len(unknown) > 1 else ''}: {', '.join(unknown)}",
            f"Stages in pipeline.yaml: {', '.join(project.stages)}.",
        )
    plan = topological(project.stages, targets or None)
    started = time.time()
    record = RunRecord(
        id=new_run_id(started),
        kind=kind,
        started=started,
        targets=list(targets or []),
        git_commit=git.head(root),
        git_dirty=git.is_dirty(root),
        git_branch=git.branch(home),  # an experiment's scratch tree has none: the workspace's
        params=project.params_raw,
        extra=dict(extra or {}),
    )
    log_dir = home / LOG_ROOT / record.id
    compiled = prepare(project, log_dir / "prepare.log")
    result = RunResult(record, [], compiled=compiled)
    layout = layout_of(project)
    lock_path = root / "dvc.lock"
    lock_before = lock_path.read_bytes() if lock_path.exists() else None
    try:
        events = dvc.reproduce(
            root,
            targets,
            force=force,
            dry=dry,
            log_dir=log_dir,
            on_event=on_event,
            after_stage=preflight_hook(project),
        )
        result.stages = [
            StageResult(e.stage, e.status, e.seconds, str(e.log) if e.log else None) for e in events
        ]
        if dry:
            _propagate_would_run(project, result.stages)
    except dvc.RunHalted as exc:  # pre-flight checks after ingest: nothing trained
        fresh.clear_stamp(root)
        seen = {e.stage: e for e in exc.events}
        for n in plan:
            ev = seen.get(n)
            log = str(ev.log) if ev is not None and ev.log else None
            result.stages.append(
                StageResult(n, ev.status, ev.seconds, log) if ev else StageResult(n, "not run")
            )
        result.error = exc.error
    except dvc.ReproFailed as exc:
        # transactional: dvc.lock describes the last complete run; the failed stage's
        # outputs go back to what that lock records
        if lock_before is None:
            lock_path.unlink(missing_ok=True)
        else:
            lock_path.write_bytes(lock_before)
            dvc.checkout(root, [exc.stage], log_dir / "restore.log")
        fresh.clear_stamp(root)
        seen = {e.stage: e for e in exc.events}
        for name in plan:
            ev = seen.get(name)
            if ev is None:
                result.stages.append(StageResult(name, "not run"))
                continue
            st = StageResult(name, ev.status, ev.seconds, str(ev.log) if ev.log else None)
            if ev.status == "failed":
                st.exit_status, st.error, st.tail = ev.exit_status, ev.error, tail(ev.log)
            result.stages.append(st)
        failed = next(s for s in result.stages if s.status == "failed")
        result.error = _stage_error(failed)
    if result.error is None and not dry:
        fresh.write_stamp(project, plan, layout)
    return finalize(result, root, home, plan, layout, dry=dry)

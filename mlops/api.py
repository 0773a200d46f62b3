"""The public Python API: one function per CLI verb, each returning a result object.

    >>> from mlops import api
    >>> result = api.run(".")            # like `mlops run`
    >>> result.record.metrics["accuracy"]

Functions raise `mlops.errors.MlopsError` subclasses for expected failures (each maps to an exit
code); they never print.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from mlops.adapters import lock
from mlops.config import Project, load_project
from mlops.data.commands import InferResult, infer_project, validate_project
from mlops.data.validation import ValidationReport
from mlops.deploy.deployer import DeployResult
from mlops.deploy.deployer import deploy as deploy_version
from mlops.deploy.envs import EnvStatus, environments  # registers deployments for lineage
from mlops.engine.cluster import EngineInfo
from mlops.errors import DeployError
from mlops.pipeline.commit import CommitResult, commit_results
from mlops.pipeline.compare import RunDiff, diff_runs
from mlops.pipeline.compile import compile_dvc_yaml
from mlops.pipeline.experiments import ApplyResult, ExpRun, apply_experiment, run_experiments
from mlops.pipeline.records import RunRecord, RunStore
from mlops.pipeline.runner import RunResult, StageEvent, ensure_project, prepare, run_pipeline
from mlops.pipeline.scaffold import InitResult, init_project
from mlops.pipeline.status import StageStatus, project_status
from mlops.registry import Registry, read_registry
from mlops.registry import lineage as registry_lineage
from mlops.registry import promote as registry_promote
from mlops.registry import register as registry_register
from mlops.registry.desired import Desired, desired_version
from mlops.registry.lineage import Lineage
from mlops.registry.promote import PromoteResult, TagResult
from mlops.registry.register import RegisterResult
from mlops.reports.merge_request import MergeRequestReport

if TYPE_CHECKING:
    from mlops.deploy.canary import CanaryResult
    from mlops.deploy.k8s import Rendered
    from mlops.monitor.canary import CanaryReport
    from mlops.monitor.checks import MonitorReport
    from mlops.pipeline.reproduce import ReproduceResult


def init(directory: Path | str = ".", force: bool = False) -> InitResult:
    """Scaffold a project that runs out of the box (`mlops init`)."""
    return init_project(directory, force=force)


def init_from_data(
    directory: Path | str,
    data: Path | str,
    target: str,
    *,
    task: str | None = None,
    time: str | None = None,
    force: bool = False,
) -> InitResult:
    """Scaffold a project on the user's own table (`mlops init --data FILE --target COL`)."""
    from mlops.pipeline.scaffold_data import init_from_data as build

    return build(directory, data, target, task=task, time=time, force=force)


def check(root: Path | str = ".", *, data: bool = False) -> Project:
    """Validate pipeline.yaml and params.yaml; raise `ConfigError` listing every problem.

    With `data`, also the pre-flight checks against the input files that exist (columns named,
    gate metrics and estimator against the task: `mlops.config.preflight`)."""
    project = load_project(root)
    if data:
        from mlops.config.preflight import check_project_data

        check_project_data(project)
    return project


@lock.locked
def compile(root: Path | str = ".", *, write: bool = True) -> tuple[str, bool]:
    """dvc.yaml text for the project, and whether it was (re)written."""
    project = ensure_project(Path(root)) if write else load_project(root)
    if not write:
        return compile_dvc_yaml(project), False
    changed = prepare(project, project.root / ".mlops" / "logs" / "compile.log")
    return compile_dvc_yaml(project), changed


def run(
    root: Path | str = ".",
    stages: list[str] | None = None,
    *,
    force: bool = False,
    dry: bool = False,
    on_event: Callable[[StageEvent], None] | None = None,
) -> RunResult:
    """Run the pipeline (`mlops run`). A failure is in `result.error`, already recorded."""
    return run_pipeline(root, stages, force=force, dry=dry, on_event=on_event)


def status(root: Path | str = ".") -> list[StageStatus]:
    """Per stage: up to date, or why it would run (`mlops status`)."""
    return project_status(root)


def runs_list(
    root: Path | str = ".",
    limit: int | None = 20,
    *,
    where: str | None = None,
    sort: str | None = None,
    descending: bool = False,
) -> list[RunRecord]:
    """Recorded runs, most recent first, or filtered and sorted (`mlops runs list`).

    `where` is a filter such as `metrics.accuracy > 0.9 and params.train.C < 1` (see
    `mlops.pipeline.query`); `sort` a field such as `metrics.accuracy`.
    """
    from mlops.pipeline.query import parse, select

    if where:
        parse(where)  # a bad filter is an error even when there are no runs yet
    if not where and not sort:
        return RunStore(Path(root).resolve()).list(limit=limit)
    records = RunStore(Path(root).resolve()).list(limit=None)
    return select(records, where, sort, descending, limit)


def runs_show(root: Path | str = ".", run_id: str = "latest") -> RunRecord:
    """One recorded run by id, id prefix, or `latest` (`mlops runs show`)."""
    return RunStore(Path(root).resolve()).get(run_id)


def runs_diff(root: Path | str, a: str, b: str, *, all_params: bool = False) -> RunDiff:
    """Two runs' params and metrics side by side (`mlops runs diff A B`)."""
    store = RunStore(Path(root).resolve())
    return diff_runs(store.get(a), store.get(b), all_params=all_params)


def runs_push(root: Path | str = ".", remote: str = "origin") -> int:
    """Push every run record to `remote` (`mlops runs push`); how many the repository holds.

    Raises `GitStateError` when git refuses (the message says why, credentials redacted)."""
    from mlops.adapters.git import redact
    from mlops.errors import GitStateError
    from mlops.pipeline import gitrecords

    root = Path(root).resolve()
    RunStore(root).sync()  # records saved before they were stored in git are in the index only
    refs = gitrecords.local_refs(root)
    if not refs:
        return 0
    res = gitrecords.push(root, remote)
    if res.code != 0:
        raise GitStateError(
            f"could not push the run records to {remote}: {redact((res.err or res.out).strip())}",
            "Check that the remote exists and that you may push to it.",
        )
    return len(refs)


def runs_pull(root: Path | str = ".", remote: str = "origin") -> int:
    """Fetch the run records of `remote` (`mlops runs pull`); how many were new here."""
    from mlops.adapters.git import redact
    from mlops.errors import GitStateError
    from mlops.pipeline import gitrecords

    root = Path(root).resolve()
    res = gitrecords.fetch(root, remote)
    if res.code != 0:
        raise GitStateError(
            f"could not fetch the run records from {remote}: "
            f"{redact((res.err or res.out).strip())}",
            "Check that the remote exists and that you may read it.",
        )
    return RunStore(root).sync()


def exp_run(
    root: Path | str,
    settings: list[str],
    *,
    name: str | None = None,
    on_event: Callable[[StageEvent], None] | None = None,
    on_start: Callable[[dict], None] | None = None,
) -> list[ExpRun]:
    """Run experiments with changed params, leaving the workspace untouched (`mlops exp run`)."""
    return run_experiments(root, settings, name=name, on_event=on_event, on_start=on_start)


def exp_apply(root: Path | str, run_id: str, *, force: bool = False) -> ApplyResult:
    """Write a recorded run's params into params.yaml (`mlops exp apply`)."""
    return apply_experiment(root, run_id, force=force)


# ---- results into git, the registry, promotion ----------------------------------------------


def commit(root: Path | str = ".", *, message: str | None = None) -> CommitResult:
    """Push data and models to the DVC remote, then commit the run's results (`mlops commit`)."""
    return commit_results(root, message=message)


def register(
    root: Path | str = ".",
    name: str | None = None,
    *,
    version: str | None = None,
    bump: str | None = None,
    ref: str = "HEAD",
    push: bool = False,
    force: bool = False,
    remote: str = "origin",
    message: str | None = None,
    skip_registered: bool = False,
) -> RegisterResult:
    """Register the bundle committed at `ref` as a new version (`mlops register`); with `push`,
    the run records go to `remote` too."""
    result = registry_register.register(
        root,
        name,
        version=version,
        bump=bump,
        ref=ref,
        push=push,
        force=force,
        remote=remote,
        message=message,
        skip_registered=skip_registered,
    )
    if push:
        _push_records(root, push, remote)
    return result


def registry_show(root: Path | str = ".") -> Registry:
    """The registry, read from the tags (`mlops registry show`, `mlops registry history`)."""
    return read_registry(root)


def lineage(root: Path | str, spec: str) -> Lineage:
    """Commit, params, data hashes, metrics, verdict and stages of `NAME@vX.Y.Z`."""
    return registry_lineage.lineage(root, spec)


def reproduce(root: Path | str, spec: str, *, keep: bool = False) -> ReproduceResult:
    """Rebuild `NAME@vX.Y.Z` from scratch in a work tree of its commit; compare every output's
    hash with its dvc.lock (`result.identical`, `result.error()` when not)."""
    from mlops.pipeline.reproduce import reproduce as reproduce_version

    return reproduce_version(root, spec, keep=keep)


def promote(
    root: Path | str,
    name: str,
    version: str,
    env: str,
    *,
    push: bool = False,
    remote: str = "origin",
    force: bool = False,
) -> PromoteResult:
    """Promote a version to an environment (`mlops promote`): a stage tag, or a merge request."""
    return registry_promote.promote(root, name, version, env, push=push, remote=remote, force=force)


def rollback(
    root: Path | str,
    env: str,
    name: str | None = None,
    *,
    push: bool = False,
    remote: str = "origin",
) -> PromoteResult:
    """Promote the version `env` ran before its current one (`mlops rollback`)."""
    return registry_promote.rollback(root, env, name, push=push, remote=remote)


def deprecate(
    root: Path | str,
    name: str,
    *,
    push: bool = False,
    remote: str = "origin",
    message: str | None = None,
) -> TagResult:
    """Deprecate an artifact: `NAME@deprecated` (`mlops deprecate`)."""
    return registry_promote.deprecate(root, name, push=push, remote=remote, message=message)


def deregister(
    root: Path | str,
    name: str,
    version: str,
    *,
    push: bool = False,
    remote: str = "origin",
    message: str | None = None,
) -> TagResult:
    """Deregister a version: `NAME@vX.Y.Z!` (`mlops deregister`)."""
    return registry_promote.deregister(
        root, name, version, push=push, remote=remote, message=message
    )


def desired(root: Path | str, env: str, name: str | None = None) -> Desired:
    """The version environment `env` should run (tracked latest, or its pin file)."""
    return desired_version(root, env, name)


def serve(
    root: Path | str = ".",
    *,
    env: str | None = None,
    bundle: Path | str | None = None,
    host: str = "127.0.0.1",
    port: int = 8080,
    workers: int = 1,
    log_dir: Path | str | None = None,
    log: bool = True,
    max_rows: int = 10_000,
    max_body_mb: float = 16.0,
    range_margin: float = 0.0,
    poll_seconds: float = 1.0,
    on_loaded: Callable[..., None] | None = None,
    read_timeout: float = 30.0,
    log_url: str | None = None,
    host_id: str | None = None,
    ship_seconds: float = 60.0,
    target: str | None = None,
    cache_dir: Path | str | None = None,
) -> None:
    """Serve a model over HTTP until stopped (`mlops serve`); blocks.

    `target` follows a deployment target given by URL or directory without a project (as in a
    pod): `s3://bucket/staging` is polled and its versions cached in `cache_dir` (default
    `$MLOPS_CACHE_DIR` or ~/.cache/mlops). With `env`, every version is also verified against
    the hashes git recorded for it (dvc.lock at its registration tag).

    With `log_url` (a directory or an fsspec URL such as s3://bucket/staging), the prediction
    log is spooled locally (`log_dir`, default .mlops/log-spool/<host>) and shipped there as
    columnar segments under `logs/<host_id>/` and `feedback/<host_id>/`; an object-store
    target's log is shipped to the target itself unless `log_url` says otherwise.

    `env` follows the environment's deployment target (switching versions when its `current`
    changes); `bundle` serves one bundle directory (or a target directory, followed likewise).
    `on_loaded(info)` gets {name, version, mode, workers} once the bundle is verified (and, with
    one worker, loaded), before the port opens.
    """
    from mlops.errors import UsageError
    from mlops.serve.server import require_extra, run_server
    from mlops.serve.service import ServeConfig

    require_extra()
    config = ServeConfig(
        host=host,
        port=port,
        workers=workers,
        max_rows=max_rows,
        max_body_bytes=int(max_body_mb * 1024 * 1024),
        range_margin=range_margin,
        poll_seconds=poll_seconds,
        read_timeout=read_timeout,
    )
    if target is not None:
        if env is not None or bundle is not None:
            raise UsageError(
                "give exactly one of --env ENV, --target URL or --bundle PATH",
                "See `mlops serve -h`.",
            )
        config.target, default_log = resolve_serve_target(target, cache_dir)
        if "://" in config.target:  # the workers of this server share one cache
            config.cache_dir = str(default_log.parent.absolute())
    else:
        config.bundle, config.target, default_log = resolve_serve_source(root, env, bundle)
    if env is not None:  # a checkout: verify versions against what git recorded
        from mlops.config.check import load_pipeline

        pipeline = load_pipeline(root)
        config.git_root = str(Path(root).resolve())
        config.model_name, config.model_path = pipeline.model.name, pipeline.model.path
        if "://" in (config.target or ""):
            from mlops.serve.follow import default_cache

            cache = Path(cache_dir) if cache_dir else default_cache(config.target or "")
            config.cache_dir, default_log = str(cache.absolute()), cache / "predictions"
    config.trusted_types = serve_trusted_types(root)
    if log and log_url is None and "://" in (config.target or ""):
        log_url = config.target  # an object-store target: its logs go back to it
    if log and log_url:
        from mlops.monitor.segments import check_url
        from mlops.serve.segments import host_id as resolve_host

        config.host_id = resolve_host(host_id)
        config.log_url = check_url(log_url)
        config.ship_seconds = ship_seconds
        default_log = Path(root).absolute() / ".mlops" / "log-spool" / config.host_id
    if log:
        config.log_dir = str(Path(log_dir).absolute() if log_dir else default_log)
        try:
            Path(config.log_dir).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UsageError(
                f"cannot write the prediction log to {config.log_dir}: {exc.strerror}",
                "Give a writable --log-dir DIR, or --no-log.",
            ) from None
    run_server(config, on_loaded)


def serve_trusted_types(root: Path | str) -> list[str]:
    """The project's `model.trusted_types` when `root` has a pipeline.yaml, else none."""
    if not (Path(root) / "pipeline.yaml").is_file():
        return []
    from mlops.config.check import load_pipeline

    return list(load_pipeline(root).model.trusted_types)


def resolve_serve_target(target: str, cache_dir: Path | str | None) -> tuple[str, Path]:
    """(target, default prediction-log dir) for `mlops serve --target URL|DIR`."""
    from mlops.deploy.remote import RemoteTarget, open_any
    from mlops.errors import UsageError

    found = open_any(target, where="--target")
    if isinstance(found, RemoteTarget):
        from mlops.serve.follow import default_cache

        cache = Path(cache_dir) if cache_dir else default_cache(target)
        return target, cache / "predictions"
    if not found.root.is_dir():
        raise UsageError(
            f"--target {target}: no deployment target directory there",
            "Give the directory `mlops deploy` installs into, or an s3:// URL.",
        )
    return str(found.root), found.predictions_dir


def resolve_serve_source(
    root: Path | str, env: str | None, bundle: Path | str | None
) -> tuple[str | None, str | None, Path]:
    """(bundle dir, target dir, default prediction-log dir) for `--env` or `--bundle`."""
    from mlops.deploy.target import PREDICTIONS, is_target, open_target
    from mlops.errors import UsageError

    if (env is None) == (bundle is None):
        raise UsageError("give exactly one of --env ENV or --bundle PATH", "See `mlops serve -h`.")
    if env is not None:
        from mlops.config.check import load_pipeline

        envs = load_pipeline(root).environments  # a serving host needs no data or params
        if env not in envs:
            raise UsageError(
                f"unknown environment {env!r}",
                f"pipeline.yaml defines: {', '.join(envs) or 'none'} (under `environments:`).",
            )
        spec_target = envs[env].target or f".mlops/envs/{env}"
        if "://" in spec_target:  # object storage: followed into a local cache
            from mlops.deploy.remote import open_any

            open_any(spec_target, where=f"environments.{env}.target")
            return None, spec_target, Path(root).resolve() / ".mlops" / PREDICTIONS / env
        target = open_target(Path(root).resolve() / spec_target)
        target.require_current()
        return None, str(target.root), target.predictions_dir
    path = Path(bundle).absolute()  # type: ignore[arg-type]
    if is_target(path):
        target = open_target(path)
        target.require_current()
        return None, str(target.root), target.predictions_dir
    if not path.is_dir():
        raise UsageError(
            f"no bundle at {path}",
            "Give a bundle directory such as models/NAME (built by `mlops run`).",
        )
    return str(path), None, Path(root).absolute() / ".mlops" / PREDICTIONS / path.name


def validate(
    root: Path | str = ".",
    input: str | None = None,
    *,
    schema: str | None = None,
    stage: str | None = None,
    reference: str | None = None,
    previous: str | None = None,
    no_schema: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> ValidationReport:
    """Validate, profile and compare data (`mlops validate`); the report says what failed."""
    return validate_project(
        root,
        input,
        schema=schema,
        stage=stage,
        reference=reference,
        previous=previous,
        no_schema=no_schema,
        progress=progress,
    )


def infer_schema(
    root: Path | str = ".",
    input: str | None = None,
    *,
    schema: str | None = None,
    stage: str | None = None,
    tolerance: float = 0.0,
    force: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> InferResult:
    """Draft `data/schema.yaml` from the data (`mlops validate --infer`)."""
    return infer_project(
        root,
        input,
        schema=schema,
        stage=stage,
        tolerance=tolerance,
        force=force,
        progress=progress,
    )


def engine(root: Path | str = ".", *, connect_local: bool = True) -> EngineInfo:
    """The engine pipeline.yaml names, checked (`mlops engine`): for `dask`, the scheduler's
    address, dashboard link and workers; raises UsageError when it cannot be reached."""
    from mlops.config.check import load_pipeline
    from mlops.engine.cluster import probe

    return probe(load_pipeline(root).engine, connect_local=connect_local)


# ---- deployments and merge-request reports ---------------------------------------------------


def deploy(
    root: Path | str,
    env: str,
    *,
    version: str | None = None,
    from_tag: str | None = None,
    rollback: bool = False,
    force: bool = False,
    push: bool | None = None,
    remote: str = "origin",
    on_step: Callable[[dict], None] | None = None,
) -> DeployResult:
    """Deploy a registered version to an environment (`mlops deploy`): fetch, verify, install,
    smoke-test, switch, record. A failure raises `DeployError` (exit 6) naming the step.

    When the environment has `kubernetes:`, its manifests are rendered for the deployed
    version and committed (pushed with `push`) for Argo CD or Flux (`manifests`).
    The deployment is also a run record (kind `deploy` or `rollback`, pushed with `push`), and
    `monitoring.notify` hears of failures and rollbacks.
    A rollback of a pinned environment then opens the merge request that pins the version now
    live (unless `push` is False), as `mlops rollback` and the monitor's rollback do."""
    import time

    from mlops.deploy.records import record_deploy
    from mlops.errors import MlopsError

    started = time.time()
    try:
        result = deploy_version(
            root,
            env,
            version=version,
            from_tag=from_tag,
            rollback=rollback,
            force=force,
            push=push,
            remote=remote,
            on_step=on_step,
        )
    except MlopsError as exc:
        if isinstance(exc, DeployError):
            record = record_deploy(Path(root).resolve(), env, started=started, error=exc)
            _notify_deploy(root, record)
            _push_records(root, push, remote)
        raise
    if rollback and push is not False and result.action == "deployed":
        from mlops.deploy.repin import pin_merge_request

        project = load_project(root)
        if project.pipeline.environments[env].pin is not None:
            line, result.merge_request = pin_merge_request(
                project, env, result.version, result.rollback_from, remote
            )
            if result.merge_request is not None:  # the note "make it durable" is done
                result.notes = [n for n in result.notes if "Make it durable" not in n]
            result.notes.append(line)
    record = record_deploy(
        Path(root).resolve(), env, started=started, result=result, rollback=rollback
    )
    if record is not None and record.kind == "rollback" and result.action == "deployed":
        _notify_deploy(root, record)
    from mlops.deploy.manifests import has_kubernetes, render_manifests

    if result.action != "failed" and has_kubernetes(root, env):
        rendered = render_manifests(
            root, env, version=result.version, commit=True, push=bool(push), remote=remote
        )
        what = ", ".join(rendered.changed) or "unchanged"
        result.notes.append(f"Kubernetes manifests in {rendered.directory}: {what}")
    _push_records(root, push, remote)
    return result


def manifests(
    root: Path | str,
    env: str,
    *,
    version: str | None = None,
    commit: bool = False,
    push: bool = False,
    remote: str = "origin",
) -> Rendered:
    """Render an environment's Kubernetes manifests into deploy/k8s/ENV/ (`mlops manifests`)."""
    from mlops.deploy.manifests import render_manifests

    return render_manifests(root, env, version=version, commit=commit, push=push, remote=remote)


def watch(
    root: Path | str = ".",
    *,
    dry_run: bool = False,
    push: bool | None = None,
    remote: str = "origin",
):
    """Retrain when the ingest source has new data (`mlops watch`, `mlops run --if-new-data`).

    Returns a `WatchResult`; a failed retrain is in `result.action` (status `failed`)."""
    from mlops.monitor.trigger import watch as watch_sources

    result = watch_sources(root, dry_run=dry_run, push=push, remote=remote)
    if result.action is not None and not dry_run:
        _push_records(root, push, remote)
    return result


def _push_records(root: Path | str, push: bool | None, remote: str) -> None:
    """Push the run records where the command pushed (best effort: a record is never worth
    failing a command that did its work)."""
    from mlops.adapters import git
    from mlops.pipeline import gitrecords

    root = Path(root).resolve()
    if push is False or remote not in git.remotes(root) or not gitrecords.local_refs(root):
        return
    gitrecords.push(root, remote, attempts=2)


def _notify_deploy(root: Path | str, record: RunRecord | None) -> None:
    """Tell `monitoring.notify` about a failed deployment or a rollback (best effort)."""
    if record is None:
        return
    from mlops.monitor.notify import notify_event

    notify_event(Path(root).resolve(), record)


def envs(root: Path | str = ".") -> list[EnvStatus]:
    """What each environment runs, since when, and what it should run (`mlops envs`)."""
    return environments(root)


def report(
    root: Path | str = ".", vs: list[str] | None = None, *, post: bool = False
) -> MergeRequestReport:
    """The merge-request report (`mlops report`); with `post`, also the merge request's note."""
    from mlops.reports.merge_request import build_report
    from mlops.reports.merge_request import post as post_note

    result = build_report(root, vs)
    if post:
        post_note(result)
    return result


# ---- monitoring ------------------------------------------------------------------------------


def monitor(
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
    """Check an environment's live traffic and act on a breach (`mlops monitor`).

    `log_url` reads the log segments servers shipped there (`mlops serve --log-url`).
    Returns the report (`report.breached`, `report.action`); a breach is not raised."""
    from mlops.monitor.commands import monitor_project

    report = monitor_project(
        root,
        env,
        since=since,
        log_dir=log_dir,
        dry_run=dry_run,
        push=push,
        remote=remote,
        now=now,
        log_url=log_url,
    )
    if not dry_run:
        _push_records(root, push, remote)
    return report


# ---- canary and shadow releases (mlops.deploy.canary, mlops.monitor.canary) -----------------


def deploy_canary(
    root: Path | str,
    env: str,
    *,
    percent: float | None = None,
    shadow: bool = False,
    version: str | None = None,
    force: bool = False,
    push: bool | None = None,
    remote: str = "origin",
    on_step: Callable[[dict], None] | None = None,
) -> CanaryResult:
    """Start a canary (`percent` of the answers) or a shadow release of the desired version (or
    `version`) beside the live one (`mlops deploy --canary/--shadow`)."""
    from mlops.deploy import canary

    with lock.repository(root):
        return canary.start(
            root, env, percent=percent, shadow=shadow, version=version, force=force, push=push,
            remote=remote, on_step=on_step,
        )  # fmt: skip


def promote_canary(
    root: Path | str, env: str, *, full: bool = False, push: bool | None = None,
    remote: str = "origin",
) -> CanaryResult:  # fmt: skip
    """Step the release in `env` forward; past the last step the candidate goes live."""
    from mlops.deploy import canary

    with lock.repository(root):
        return canary.promote(root, env, full=full, push=push, remote=remote)


def abort_canary(
    root: Path | str, env: str, *, reason: str = "aborted by hand", push: bool | None = None,
    remote: str = "origin",
) -> CanaryResult:  # fmt: skip
    """End the release in `env`; live keeps answering everything."""
    from mlops.deploy import canary

    with lock.repository(root):
        return canary.abort(root, env, reason=reason, push=push, remote=remote)


def canary_check(
    root: Path | str, env: str, *, act: bool = False, log_dir: Path | str | None = None,
    push: bool | None = None, remote: str = "origin",
) -> CanaryReport:  # fmt: skip
    """Compare the release in `env` with live; with `act`, abort or promote as decided."""
    from mlops.monitor.canary import check_release

    if not act:
        return check_release(root, env, log_dir=log_dir)
    with lock.repository(root):
        return check_release(root, env, act=True, log_dir=log_dir, push=push, remote=remote)

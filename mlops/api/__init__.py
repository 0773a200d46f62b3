"""The public Python API: one function per CLI verb, each returning a result object.

    >>> from mlops import api
    >>> result = api.run(".")            # like `mlops run`
    >>> result.record.metrics["accuracy"]

Functions raise `mlops.errors.MlopsError` subclasses for expected failures (each maps to an exit
code); they never print.

Importing this module loads no domain package: each function imports what it uses, so a command
pays only for its own packages (`tests/test_structure.py` holds this). Add a use case as a
function here, importing inside it; a group of related ones may go in a module of this package,
re-exported below (`registry`, `deployments`, `monitoring`, `canary`, `runner`, `runs`, `serving`,
`views`). The result types are importable from here for type checking
(`if TYPE_CHECKING: from mlops.api import MonitorReport`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops.adapters import lock  # light: the decorator that serializes writers
from mlops.api.canary import abort_canary as abort_canary
from mlops.api.canary import canary_check as canary_check
from mlops.api.canary import deploy_canary as deploy_canary
from mlops.api.canary import promote_canary as promote_canary
from mlops.api.canary import release_report as release_report
from mlops.api.deployments import deploy as deploy
from mlops.api.deployments import envs as envs
from mlops.api.deployments import manifests as manifests
from mlops.api.monitoring import MonitorSettings as MonitorSettings
from mlops.api.monitoring import monitor as monitor
from mlops.api.monitoring import watch as watch
from mlops.api.registry import deployment_readers as deployment_readers
from mlops.api.registry import deprecate as deprecate
from mlops.api.registry import deregister as deregister
from mlops.api.registry import desired as desired
from mlops.api.registry import lineage as lineage
from mlops.api.registry import promote as promote
from mlops.api.registry import register as register
from mlops.api.registry import registry_show as registry_show
from mlops.api.registry import rollback as rollback
from mlops.api.runner import runner_session as runner_session
from mlops.api.runner import runner_start as runner_start
from mlops.api.runner import runner_status as runner_status
from mlops.api.runner import runner_stop as runner_stop
from mlops.api.runs import runs_diff as runs_diff
from mlops.api.runs import runs_list as runs_list
from mlops.api.runs import runs_pull as runs_pull
from mlops.api.runs import runs_push as runs_push
from mlops.api.runs import runs_show as runs_show
from mlops.api.serving import ServeSettings as ServeSettings
from mlops.api.serving import serve as serve
from mlops.api.serving import serve_trusted_types as serve_trusted_types
from mlops.api.views import drift_rows as drift_rows
from mlops.api.views import monitor_view as monitor_view
from mlops.api.views import registry_rows as registry_rows
from mlops.api.views import report_html as report_html
from mlops.api.views import report_markdown as report_markdown
from mlops.api.views import validation_view as validation_view

if TYPE_CHECKING:  # the result types, for annotations and for front ends' type checking
    from mlops.api.canary import CanaryReport as CanaryReport
    from mlops.api.canary import CanaryResult as CanaryResult
    from mlops.api.runner import RunnerInfo as RunnerInfo
    from mlops.config import Project as Project
    from mlops.data.commands import InferResult as InferResult
    from mlops.data.validation import ValidationReport as ValidationReport
    from mlops.deploy.deployer import DeployResult as DeployResult
    from mlops.deploy.envs import EnvStatus as EnvStatus
    from mlops.deploy.k8s import Rendered as Rendered
    from mlops.engine.cluster import EngineInfo as EngineInfo
    from mlops.monitor.checks import MonitorReport as MonitorReport
    from mlops.monitor.trigger import WatchResult as WatchResult
    from mlops.pipeline.commit import CommitResult as CommitResult
    from mlops.pipeline.compare import RunDiff as RunDiff
    from mlops.pipeline.experiments import ApplyResult as ApplyResult
    from mlops.pipeline.experiments import ExpRun as ExpRun
    from mlops.pipeline.merge_request import MergeRequestReport as MergeRequestReport
    from mlops.pipeline.records import RunRecord as RunRecord
    from mlops.pipeline.reproduce import ReproduceResult as ReproduceResult
    from mlops.pipeline.runner import RunResult as RunResult
    from mlops.pipeline.runner import StageEvent as StageEvent
    from mlops.pipeline.scaffold import InitResult as InitResult
    from mlops.pipeline.status import StageStatus as StageStatus
    from mlops.registry import Artifact as Artifact
    from mlops.registry import Registry as Registry
    from mlops.registry.desired import Desired as Desired
    from mlops.registry.lineage import DeploymentReader as DeploymentReader
    from mlops.registry.lineage import Lineage as Lineage
    from mlops.registry.promote import PromoteResult as PromoteResult
    from mlops.registry.promote import TagResult as TagResult
    from mlops.registry.register import RegisterResult as RegisterResult


def init(directory: Path | str = ".", force: bool = False) -> InitResult:
    """Scaffold a project that runs out of the box (`mlops init`)."""
    from mlops.pipeline.scaffold import init_project

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
    from mlops.config import load_project

    project = load_project(root)
    if data:
        from mlops.config.preflight import check_project_data

        check_project_data(project)
    return project


@lock.locked
def compile(root: Path | str = ".", *, write: bool = True) -> tuple[str, bool]:
    """dvc.yaml text for the project, and whether it was (re)written."""
    from mlops.config import load_project
    from mlops.pipeline.compile import compile_dvc_yaml
    from mlops.pipeline.runner import ensure_project, prepare

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
    from mlops.pipeline.runner import run_pipeline

    return run_pipeline(root, stages, force=force, dry=dry, on_event=on_event)


def status(root: Path | str = ".") -> list[StageStatus]:
    """Per stage: up to date, or why it would run (`mlops status`)."""
    from mlops.pipeline.status import project_status

    return project_status(root)


def exp_run(
    root: Path | str,
    settings: list[str],
    *,
    name: str | None = None,
    on_event: Callable[[StageEvent], None] | None = None,
    on_start: Callable[[dict[str, Any]], None] | None = None,
    on_finish: Callable[[ExpRun], None] | None = None,
    jobs: int | None = 1,
) -> list[ExpRun]:
    """Run experiments with changed params, leaving the workspace untouched (`mlops exp run`);
    `jobs` at once (None: one per CPU, at most 4)."""
    from mlops.pipeline.experiments import run_experiments

    return run_experiments(
        root,
        settings,
        name=name,
        on_event=on_event,
        on_start=on_start,
        on_finish=on_finish,
        jobs=jobs,
        warming=lambda: _runner_warming(root),
    )


def _runner_warming(root: Path | str) -> bool:
    """True while this repository's runner is still importing: it says so, or it is too busy
    importing to answer within a second (a long import step on a loaded machine). False when
    it is done or no runner listens."""
    from mlops.handoff.address import git_common_dir, socket_path
    from mlops.handoff.client import connect, request

    common = git_common_dir(root)
    if common is None:
        return False
    path = socket_path(common)
    probe = connect(path, 1.0) if path.exists() else None
    if probe is None:  # nobody listens there
        return False
    probe.close()
    reply = request(path, {"op": "status"}, timeout=1.0)
    return reply is None or not reply.get("preloaded", True)


def exp_apply(root: Path | str, run_id: str, *, force: bool = False) -> ApplyResult:
    """Write a recorded run's params into params.yaml (`mlops exp apply`)."""
    from mlops.pipeline.experiments import apply_experiment

    return apply_experiment(root, run_id, force=force)


# ---- results into git, the registry, promotion ----------------------------------------------


def commit(root: Path | str = ".", *, message: str | None = None) -> CommitResult:
    """Push data and models to the DVC remote, then commit the run's results (`mlops commit`)."""
    from mlops.pipeline.commit import commit_results

    return commit_results(root, message=message)


def reproduce(root: Path | str, spec: str, *, keep: bool = False) -> ReproduceResult:
    """Rebuild `NAME@vX.Y.Z` from scratch in a work tree of its commit; compare every output's
    hash with its dvc.lock (`result.identical`, `result.error()` when not)."""
    from mlops.pipeline.reproduce import reproduce as reproduce_version

    return reproduce_version(root, spec, keep=keep)


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
    from mlops.data.commands import validate_project

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
    from mlops.data.commands import infer_project

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


# ---- merge-request reports ------------------------------------------------------------------


def report(
    root: Path | str = ".", vs: list[str] | None = None, *, post: bool = False
) -> MergeRequestReport:
    """The merge-request report (`mlops report`); with `post`, also the merge request's note."""
    from mlops.pipeline.merge_request import build_report
    from mlops.pipeline.merge_request import post as post_note

    result = build_report(root, vs)
    if post:
        post_note(result)
    return result


# ---- for front ends: the no-op run, files, and the reports as text -------------------------


def quick_run(
    root: Path | str = ".",
    stages: list[str] | None = None,
    *,
    on_event: Callable[[StageEvent], None] | None = None,
) -> RunResult | None:
    """`mlops run`'s no-op path: the result when nothing needs to run, else None (then `run`).

    It needs neither the config models nor DVC (docs/architecture.md, "How mlops run works")."""
    from mlops.pipeline.quick import quick_run as quick

    return quick(root, stages, on_event=on_event)


def save_text(path: Path | str, text: str) -> None:
    """Write a report or a schema a command was asked for (`--html FILE`), atomically."""
    from mlops.config.yamlfile import atomic_write_text

    atomic_write_text(Path(path), text)


def config_schema() -> dict[str, Any]:
    """JSON Schema of pipeline.yaml (`mlops schema`), with each built-in's `with:` keys."""
    from mlops.config.reference import json_schema

    return json_schema()

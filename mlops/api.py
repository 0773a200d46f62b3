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

from mlops.config import Project, load_project
from mlops.data.commands import InferResult, infer_project, validate_project
from mlops.data.validation import ValidationReport
from mlops.pipeline.compile import compile_dvc_yaml
from mlops.pipeline.records import RunRecord, RunStore
from mlops.pipeline.runner import RunResult, StageEvent, ensure_project, prepare, run_pipeline
from mlops.pipeline.scaffold import InitResult, init_project
from mlops.pipeline.status import StageStatus, project_status


def init(directory: Path | str = ".", force: bool = False) -> InitResult:
    """Scaffold a project that runs out of the box (`mlops init`)."""
    return init_project(directory, force=force)


def check(root: Path | str = ".") -> Project:
    """Validate pipeline.yaml and params.yaml; raise `ConfigError` listing every problem."""
    return load_project(root)


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


def runs_list(root: Path | str = ".", limit: int | None = 20) -> list[RunRecord]:
    """Recorded runs, most recent first (`mlops runs list`)."""
    return RunStore(Path(root).resolve()).list(limit=limit)


def runs_show(root: Path | str = ".", run_id: str = "latest") -> RunRecord:
    """One recorded run by id, id prefix, or `latest` (`mlops runs show`)."""
    return RunStore(Path(root).resolve()).get(run_id)


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

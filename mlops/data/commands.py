"""`mlops validate` and `mlops validate --infer` in a project: settings from pipeline.yaml's
validate stage (input, schema, drift and anomaly settings), overridable per call."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlops.config.models import ValidateWith
from mlops.data.profile import Profiler, check_format
from mlops.data.schema import read_schema, schema_from_profile, write_schema
from mlops.data.stream import Progress, iter_chunks
from mlops.data.validation import Checks, ValidationReport, validate_table
from mlops.errors import UsageError

PIPELINE_FILE = "pipeline.yaml"


@dataclass
class InferResult:
    path: Path
    schema: dict[str, Any]
    rows: int
    input: str
    roles: list[str] = field(default_factory=list)  # identifier / time columns, one line each

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": str(self.path),
            "input": self.input,
            "rows": self.rows,
            "columns": list(self.schema["columns"]),
            "roles": self.roles,
        }


def stage_settings(root: Path, stage: str | None = None) -> tuple[str | None, ValidateWith]:
    """(stage name, its `with:`) of the named or first validate stage; defaults without one.

    Reads only that stage of pipeline.yaml, so it works before the files the whole pipeline
    needs exist (`--infer` runs when there is no schema yet).
    """
    from pydantic import ValidationError

    from mlops.config.yamlfile import read_yaml

    path = root / PIPELINE_FILE
    if not path.exists():
        if stage:
            raise UsageError(f"no {PIPELINE_FILE} here, so there is no stage {stage!r}")
        return None, ValidateWith()
    data = read_yaml(path, with_lines=False).data or {}
    stages = data.get("stages") if isinstance(data, dict) else None
    stages = stages if isinstance(stages, dict) else {}
    candidates = [
        n for n, s in stages.items() if isinstance(s, dict) and s.get("uses") == "validate"
    ]
    if stage is not None and stage not in candidates:
        names = ", ".join(candidates) or "none"
        raise UsageError(f"{stage!r} is not a validate stage", f"Validate stages: {names}.")
    name = stage or (candidates[0] if candidates else None)
    if name is None:
        return None, ValidateWith()
    try:
        return name, ValidateWith.model_validate(stages[name].get("with") or {})
    except ValidationError as exc:
        raise UsageError(
            f"{PIPELINE_FILE}: stages.{name}.with is invalid: {exc.errors()[0]['msg']}",
            "Run `mlops check` for every problem with its line.",
        ) from None


def need_input(root: Path, rel: str) -> None:
    """Stop with the command that writes `rel` when it does not exist yet (before ingest)."""
    if (root / rel).exists():
        return
    producer = None
    path = root / PIPELINE_FILE
    if path.exists():
        from mlops.config.yamlfile import read_yaml

        data = read_yaml(path, with_lines=False).data
        stages = data.get("stages") if isinstance(data, dict) else None
        for name, st in (stages or {}).items() if isinstance(stages, dict) else []:
            settings = st.get("with") if isinstance(st, dict) else None
            if isinstance(settings, dict) and settings.get("output") == rel:
                producer = name
                break
    raise UsageError(
        f"input {rel} does not exist yet",
        f"Run `mlops run {producer}` first: that stage writes it."
        if producer
        else "Run the stage that writes it first (`mlops run`), or give --input FILE.",
    )


def load_reference(path: Path) -> dict[str, Any]:
    """A reference profile: a bundle directory (its `reference.json`, hashes verified first)
    or a profile JSON file."""
    if path.is_dir():
        from mlops.bundle import verify_bundle

        if (path / "metadata.json").exists():
            verify_bundle(path)
        path = path / "reference.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(
            f"reference {path} does not exist",
            "Give a model bundle directory (models/<name>) or a profile JSON file.",
        ) from None
    except ValueError as exc:
        raise UsageError(f"{path} is not valid JSON: {exc}") from None
    return check_format(data, str(path))


def validate_project(
    root: Path | str = ".",
    input: str | None = None,
    *,
    schema: str | None = None,
    stage: str | None = None,
    reference: str | None = None,
    previous: str | None = None,
    no_schema: bool = False,
    progress: Progress | None = None,
) -> ValidationReport:
    """Validate `input` (default: the validate stage's) against the schema, the previous span's
    profile (default: the stage's last profile, if any) and an optional reference."""
    root = Path(root).resolve()
    _, args = stage_settings(root, stage)
    rel = input or args.input
    need_input(root, rel)
    schema_rel = schema or args.schema_
    schema_dict = None if no_schema else read_schema(root / schema_rel)
    prev: dict[str, Any] | None = None
    if previous is not None:
        prev = load_reference(root / previous)
    elif (root / args.profile).is_file():
        try:
            prev = load_reference(root / args.profile)
        except UsageError:
            prev = None  # an old or broken profile: span drift is skipped, not an error
    ref = load_reference(root / reference) if reference else None
    checks = Checks(
        display=rel,
        schema_name=None if no_schema else schema_rel,
        previous=prev,
        reference=ref,
        drift=args.drift,
        on_drift=args.drift.on_drift,
        anomaly_spec=args.anomalies,
    )
    return validate_table(root / rel, schema_dict, checks, progress=progress)


def infer_project(
    root: Path | str = ".",
    input: str | None = None,
    *,
    schema: str | None = None,
    stage: str | None = None,
    tolerance: float = 0.0,
    force: bool = False,
    progress: Progress | None = None,
) -> InferResult:
    """Draft the schema from the data (streamed) and write it; refuse to overwrite unless
    `force`."""
    from mlops.data.columns import dtype_name, summarize_frame

    root = Path(root).resolve()
    _, args = stage_settings(root, stage)
    rel = input or args.input
    target = root / (schema or args.schema_)
    if target.exists() and not force:
        raise UsageError(
            f"{target.relative_to(root) if target.is_relative_to(root) else target} exists; "
            "nothing was written",
            "Use `mlops validate --infer --force` to replace it (review the diff before "
            "committing), or --schema to write elsewhere.",
        )
    if tolerance < 0:
        raise UsageError("--tolerance must be 0 or more (a share of each column's range)")
    need_input(root, rel)
    from mlops.data.roles import infer_roles

    profiler = Profiler()
    expected: dict[str, str] = {}
    roles: dict[str, Any] = {}
    for chunk in iter_chunks(root / rel, progress=progress):
        if not expected:
            expected = {str(c): dtype_name(chunk[c]) for c in chunk.columns}
            roles = infer_roles(chunk, target=_target(root))  # judged on the first chunk
        profiler.add(summarize_frame(chunk, expected))
    profile = profiler.result()
    result = schema_from_profile(profile, tolerance, roles)
    write_schema(target, result)
    return InferResult(target, result, profile["rows"], rel, [r.line() for r in roles.values()])


def _target(root: Path) -> str | None:
    """pipeline.yaml's `model.target`, read leniently (inference runs on a half-made project)."""
    import yaml

    try:
        data = yaml.safe_load((root / "pipeline.yaml").read_text(encoding="utf-8"))
        target = (data.get("model") or {}).get("target")
    except (OSError, yaml.YAMLError, AttributeError):
        return None
    return str(target) if isinstance(target, str) else None

"""`mlops init DIR --data FILE --target COL`: a project for the user's own table.

Unlike the example project (Palmer Penguins), everything is derived from the file:

- ingest reads it (copied to `data/source/` unless it already lies inside the project);
- the data contract `data/schema.yaml` is inferred from it; nothing of the example is written;
- identifier and time columns (`mlops.data.roles.infer_roles`, plus `--time`) are excluded from
  the features, and the reason is written beside them;
- the task is `--task`, or inferred from the target's values;
- the gates mean something: the model must beat a dummy model by a stated margin, and must not
  be worse than the version in production (`DUMMY_MARGIN`, documented in docs/howto.md).
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops.config.yamlfile import atomic_write_text
from mlops.errors import UsageError
from mlops.pipeline.scaffold import (
    PIP_SPEC_NOTE,
    PIP_SPEC_PLACEHOLDER,
    TEMPLATES,
    InitResult,
    finish_project,
    pip_spec,
    start_project,
    template,
)

if TYPE_CHECKING:
    import pandas as pd

# The gate every new project starts with: close at least this share of the gap between a dummy
# model and a perfect one. Classification: accuracy >= p + 0.1 x (1 - p), p the share of the most
# frequent class (what always predicting that class scores). Regression: r2 >= 0.1 (predicting
# the mean scores r2 = 0, a perfect model 1).
DUMMY_MARGIN = 0.1
COMPARE_TOLERANCE = 0.01  # not_worse_than: production, absolute
LARGE_MB = 50  # a copied data file above this is better tracked by DVC than by git
SCHEMA = "data/schema.yaml"
ESTIMATORS: dict[str, dict[str, Any]] = {
    "classification": {
        "estimator": "sklearn.linear_model.LogisticRegression",
        "C": 1.0,
        "max_iter": 1000,
    },
    "regression": {"estimator": "sklearn.linear_model.Ridge", "alpha": 1.0},
}


def _q(value: str) -> str:
    """A YAML scalar for any column or path (JSON strings are YAML)."""
    return value if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_./-]*", value) else json.dumps(value)


def _flow(values: list[str]) -> str:
    return "[" + ", ".join(_q(v) for v in values) + "]"


def model_name(path: Path, task: str) -> str:
    """A registry name from the file's name: `Daily Weather.csv` -> `daily-weather-classifier`."""
    stem = re.sub(r"[^a-z0-9]+", "-", path.stem.lower()).strip("-")[:60] or "model"
    return f"{stem}-{'classifier' if task == 'classification' else 'regressor'}"


def dummy_gate(y: pd.Series, task: str) -> tuple[str, float, float, str]:
    """(metric, dummy's score, gate's minimum, sentence saying how they were found)."""
    if task == "regression":
        return (
            "r2",
            0.0,
            DUMMY_MARGIN,
            "predicting the mean scores r2 = 0; the gate asks for "
            f"{DUMMY_MARGIN:g} of the way to a perfect r2 = 1",
        )
    share = float(y.value_counts(normalize=True).iloc[0])
    top = y.value_counts().index[0]
    minimum = round(share + DUMMY_MARGIN * (1 - share), 3)
    return (
        "accuracy",
        round(share, 3),
        minimum,
        f"always predicting {str(top)!r} scores accuracy {share:.3f}; the gate asks for "
        f"{DUMMY_MARGIN:g} of the way from there to 1",
    )


def _read(path: Path) -> pd.DataFrame:
    from mlops.data.io import TABLE_SUFFIXES, read_table

    if not path.is_file():
        raise UsageError(
            f"--data {path}: no such file", "Give the path of a .csv or .parquet file."
        )
    if path.suffix.lower() not in TABLE_SUFFIXES:
        raise UsageError(
            f"--data {path}: not a .csv or .parquet file", "Convert it to CSV or Parquet first."
        )
    try:
        frame = read_table(path)
    except UsageError:
        raise
    except Exception as exc:  # pandas/pyarrow parse errors of many types
        raise UsageError(
            f"--data {path} could not be read: {type(exc).__name__}: {exc}",
            "Check that it is a well-formed CSV (a header row, one delimiter) or Parquet file.",
        ) from None
    if frame.empty or frame.shape[1] < 2:
        raise UsageError(
            f"--data {path} has {len(frame)} rows and {frame.shape[1]} columns",
            "A project needs a target column and at least one feature, with rows.",
        )
    return frame


def _need(frame: pd.DataFrame, column: str, option: str) -> None:
    import difflib

    columns = [str(c) for c in frame.columns]
    if column in columns:
        return
    close = difflib.get_close_matches(column, columns, n=1)
    raise UsageError(
        f"{option} {column!r} is not a column of the data"
        + (f"; did you mean {close[0]!r}?" if close else ""),
        f"Columns: {', '.join(columns[:40])}.",
    )


def plan_project(
    frame: pd.DataFrame, data: Path, target: str, task: str | None, time: str | None
) -> dict[str, Any]:
    """What the files will say: task, excluded columns and why, the gate, names."""
    from mlops.config.task import infer_task
    from mlops.data.roles import TIME, ColumnRole, infer_roles

    _need(frame, target, "--target")
    if time is not None:
        _need(frame, time, "--time")
        if time == target:
            raise UsageError("--time names the target column", "Give the date/time column.")
    y = frame[target].dropna()
    if y.empty:
        raise UsageError(f"the target {target!r} has no values", "Choose a labelled column.")
    inferred = task is None
    task = task or infer_task(y)
    if task == "classification" and y.nunique() < 2:
        raise UsageError(
            f"the target {target!r} has a single class ({str(y.iloc[0])!r})",
            "A classifier needs at least two classes in the data.",
        )
    if task == "regression" and y.dtype.kind not in "iuf":
        raise UsageError(
            f"--task regression needs a numeric target; {target!r} holds text",
            "Use --task classification, or a numeric target.",
        )
    roles = infer_roles(frame, target=target)
    if time is not None:
        roles[time] = ColumnRole(time, TIME, "named by --time")
    metric, dummy, minimum, how = dummy_gate(y, task)
    time_col = time or next((r.column for r in roles.values() if r.role == TIME), None)
    return {
        "task": task,
        "task_why": (
            f"inferred from the values of {target!r}" if inferred else "given with --task"
        ),
        "roles": roles,
        "metric": metric,
        "dummy": dummy,
        "minimum": minimum,
        "how": how,
        "time": time_col,
        "name": model_name(data, task),
    }


def pipeline_text(plan: dict[str, Any], target: str, source: str, output: str) -> str:
    """pipeline.yaml for the plan, with comments saying where each choice came from."""
    task, metric = plan["task"], plan["metric"]
    excluded = sorted(plan["roles"])
    why = "".join(f"      #   {plan['roles'][c].line()}\n" for c in excluded)
    exclude = (
        f"      # not features (identifiers and time columns, found by mlops init):\n{why}"
        f"      exclude: {_flow(excluded)}\n"
        if excluded
        else "      exclude: []                # columns that are not features\n"
    )
    span = (
        f"      # span: {{column: {_q(plan['time'])}, from: 2020-01-01, to: 2020-12-31}}"
        "   # keep a time range (docs/howto.md)\n"
        if plan["time"]
        else ""
    )
    minimum = plan["minimum"]
    gate = (
        "      # beat a dummy model (docs/howto.md, 'Gates of a new project'):\n"
        f"      #   {plan['how']}\n"
        f"      {metric}: {{min: {minimum}, not_worse_than: production, "
        f"tolerance: {COMPARE_TOLERANCE}}}\n"
    )
    perf = (
        f"  performance: {{metric: accuracy, min: {minimum}}}   # on labels sent to /feedback\n"
        if task == "classification"
        else f"  performance: {{metric: r2, min: {minimum}}}   # on labels sent to /feedback\n"
    )
    return (
        "# pipeline.yaml: the stages, data contract, gates and environments of this project.\n"
        "# `mlops run` compiles it into dvc.yaml and runs it through DVC. Every key:\n"
        "# docs/config.md (or `mlops schema` for your editor). Made by `mlops init --data`.\n"
        "version: 1\n"
        "model:\n"
        f"  name: {plan['name']}\n"
        f"  target: {_q(target)}\n"
        f"  task: {task}                 # {plan['task_why']}\n"
        "data:\n"
        "  sensitive: []                # columns to report fairness slices on, e.g. [sex]\n"
        "remote:\n"
        "  url: .mlops/remote            # a local DVC remote (git-ignored); s3://... to share\n"
        "monitoring:\n"
        "  drift: {method: auto, share: 0.5}\n"
        f"{perf}"
        "  on_breach: alert\n"
        "stages:\n"
        "  ingest:\n"
        "    uses: ingest\n"
        "    with:\n"
        f"      source: {_q(source)}\n"
        f"      output: {_q(output)}\n"
        f"{span}"
        "  validate:\n"
        "    uses: validate\n"
        "    with:\n"
        f"      input: {_q(output)}\n"
        f"      schema: {SCHEMA}       # inferred from your data by mlops init: review it\n"
        "      drift: {method: auto, share: 0.5, on_drift: continue}\n"
        "  split:\n"
        "    uses: split\n"
        "    with:\n"
        f"      input: {_q(output)}\n"
        "  train:\n"
        "    uses: train\n"
        "    with:\n"
        f"{exclude}"
        "    params: [train]\n"
        "  evaluate:\n"
        "    uses: evaluate\n"
        "    gates:\n"
        f"{gate}"
        "environments:\n"
        "  staging:\n"
        "    track: latest\n"
        "    target: .mlops/envs/staging\n"
        "  production:\n"
        "    pin: deploy/production.yaml\n"
        "    target: .mlops/envs/production\n"
        "    promotion: merge_request\n"
    )


def params_text(task: str) -> str:
    lines = [
        "# Hyper-parameters read by the stages (tracked by DVC as `params`); docs/config.md.",
        "split:",
        "  test_size: 0.25",
        "  seed: 42",
        f"  stratify: {'true' if task == 'classification' else 'false'}",
        "train:",
    ]
    lines += [f"  {k}: {v}" for k, v in ESTIMATORS[task].items()]
    return "\n".join(lines) + "\n"


def init_from_data(
    dest: Path | str,
    data: Path | str,
    target: str,
    *,
    task: str | None = None,
    time: str | None = None,
    force: bool = False,
) -> InitResult:
    """Scaffold a project in `dest` around the table `data`; refuse to overwrite files."""
    from mlops.data.schema import infer_schema, write_schema

    if task not in (None, "classification", "regression"):
        raise UsageError(f"--task {task!r}", "Use classification or regression.")
    data = Path(data).resolve()
    root = Path(dest).resolve()
    if root.exists() and not root.is_dir():
        raise UsageError(f"{root} exists and is not a directory")
    frame = _read(data)
    plan = plan_project(frame, data, target, task, time)
    inside = data.is_relative_to(root)
    source = data.relative_to(root).as_posix() if inside else f"data/source/{data.name}"
    suffix = data.suffix.lower()
    output = f"data/raw/{re.sub(r'[^A-Za-z0-9_.-]+', '-', data.stem)}{suffix}"
    planned = ["pipeline.yaml", "params.yaml", ".gitlab-ci.yml", SCHEMA]
    planned += [] if inside else [source]
    result = start_project(root, planned, force)
    spec = pip_spec()
    files = {
        "pipeline.yaml": pipeline_text(plan, target, source, output),
        "params.yaml": params_text(plan["task"]),
        ".gitlab-ci.yml": template(TEMPLATES[".gitlab-ci.yml"]).replace(PIP_SPEC_PLACEHOLDER, spec),
    }
    for rel, text in files.items():
        atomic_write_text(root / rel, text)
        result.written.append(rel)
    if not inside:
        (root / source).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(data, root / source)
        result.written.append(source)
    write_schema(root / SCHEMA, infer_schema(frame))
    result.written.append(SCHEMA)
    finish_project(root, result)
    result.notes.append(
        f"task: {plan['task']} ({plan['task_why']}); model {plan['name']}; "
        f"gate {plan['metric']} >= {plan['minimum']} ({plan['how']}) and not worse than "
        "production"
    )
    size_mb = data.stat().st_size / 2**20
    if size_mb > LARGE_MB and not inside:
        result.notes.append(
            f"{source} is {size_mb:.0f} MB: track it with DVC rather than git "
            f"(`dvc add {source}`, then commit {source}.dvc)"
        )
    for role in sorted(plan["roles"]):
        result.notes.append("excluded " + plan["roles"][role].line())
    if not spec:
        result.notes.append(PIP_SPEC_NOTE)
    return result

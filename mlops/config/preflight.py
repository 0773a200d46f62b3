"""Pre-flight checks: what pipeline.yaml asks of the data and the task, before any training.

`mlops check` runs them against the header of the ingest source (when it is a file that
exists); `mlops run` runs them right after each ingest stage, against what it wrote, before the
next stage starts. Each problem is a `ConfigIssue` naming the file, line and key to change; all of
them are reported at once (`ConfigError`, exit 2):

- every column pipeline.yaml names exists: `model.target`, `data.sensitive`, an evaluate
  stage's `slices` and `slice_gates.*.slices`, train's `exclude`, ingest's `span.column` and
  `columns` (a column the data contract declares is left to the validate stage, which reports
  it missing with every other data problem);
- the gates' metrics are metrics of the task (`accuracy` cannot gate a regression);
- the estimator in params.yaml fits the task (a classifier for classification, a regressor for
  regression).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops.config.resolve import NON_FILE_SOURCES, PARAMS_FILE, PIPELINE_FILE
from mlops.config.yamlfile import Loc, YamlDoc, format_loc, read_yaml
from mlops.errors import ConfigError, ConfigIssue

if TYPE_CHECKING:
    from mlops.config.check import Project

# what the evaluate stage computes for each task (tests check these against its output)
METRICS = {
    "classification": (
        "accuracy",
        "balanced_accuracy",
        "f1_macro",
        "precision_macro",
        "recall_macro",
        "roc_auc",
    ),
    "regression": ("rmse", "mae", "r2"),
}
SLICE_ONLY = {"classification": ("positive_rate",), "regression": ()}
# computed only when a gate names it (so reports without such a gate keep their bytes)
GATED_ONLY = {"classification": ("log_loss",), "regression": ()}
# also in metrics.json: a gate may ask for enough test rows; `converged: true` (the fit)
ANY_TASK = ("test_rows", "converged")
EXAMPLE_GATE = {"classification": "balanced_accuracy: {min: 0.6}", "regression": "r2: {min: 0.1}"}
EXAMPLE_ESTIMATOR = {
    "classification": "sklearn.ensemble.RandomForestClassifier",
    "regression": "sklearn.linear_model.Ridge",
}
DOCS = "docs/config.md"
HINT = (
    "Fix each key listed above (file:line), then run `mlops check` again; "
    f"every key is described in {DOCS}."
)


@dataclass(frozen=True)
class ColumnRef:
    """A column pipeline.yaml names, where, and against which data it is checked."""

    column: str
    loc: Loc
    what: str
    source_only: bool = False  # ingest's span/columns: checked against the source


def column_refs(project: Project) -> list[ColumnRef]:
    """Every column name pipeline.yaml uses, with its key path."""
    p = project.pipeline
    refs = [ColumnRef(p.model.target, ("model", "target"), "the target (model.target)")]
    refs += [
        ColumnRef(c, ("data", "sensitive", i), "a sensitive column")
        for i, c in enumerate(p.data.sensitive)
    ]
    for name, stage in p.stages.items():
        for i, spec in enumerate(stage.slices):
            for j, col in enumerate([spec] if isinstance(spec, str) else spec):
                loc = ("stages", name, "slices", i) + (() if isinstance(spec, str) else (j,))
                refs.append(ColumnRef(col, loc, "a slice column"))
        for gate, sg in stage.slice_gates.items():
            for i, spec in enumerate(sg.slices):
                for col in [spec] if isinstance(spec, str) else spec:
                    loc = ("stages", name, "slice_gates", gate, "slices", i)
                    refs.append(ColumnRef(col, loc, "a slice gate's column"))
        resolved = project.stages.get(name)
        args = resolved.args if resolved is not None else None
        if resolved is None or args is None:
            continue
        if resolved.kind == "train":
            refs += [
                ColumnRef(c, ("stages", name, "with", "exclude", i), "an excluded column")
                for i, c in enumerate(args.exclude)
            ]
        elif resolved.kind == "ingest":
            if args.span is not None:
                loc = ("stages", name, "with", "span", "column")
                refs.append(ColumnRef(args.span.column, loc, "the span column", True))
            for i, c in enumerate(args.columns or []):
                loc = ("stages", name, "with", "columns", i)
                refs.append(ColumnRef(c, loc, "a column to keep", True))
    return refs


def read_header(path: Path) -> list[str] | None:
    """Column names of a CSV or Parquet file (or the first part of a directory of them), read
    without loading the data; None when there is no such table."""
    if path.is_dir():
        parts = sorted(
            q for q in path.rglob("*") if q.suffix.lower() in (".csv", ".parquet", ".pq")
        )
        return read_header(parts[0]) if parts else None
    if not path.is_file():
        return None
    suffix = path.suffix.lower()
    if suffix == ".csv":
        with open(path, newline="", encoding="utf-8", errors="replace") as fh:
            row = next(csv.reader(fh), None)
        return [c.strip() for c in row] if row else None
    if suffix in (".parquet", ".pq"):
        import pyarrow.parquet as pq

        return list(pq.read_schema(path).names)
    return None


def _suggest(column: str, columns: list[str]) -> str:
    import difflib

    close = difflib.get_close_matches(column, columns, n=1)
    return f"did you mean {close[0]!r}? " if close else ""


def check_columns(
    refs: list[ColumnRef], columns: list[str], source: str, doc: YamlDoc
) -> list[ConfigIssue]:
    """An issue for each reference to a column `columns` (the header of `source`) lacks."""
    issues = []
    listed = ", ".join(columns[:30]) + (", ..." if len(columns) > 30 else "")
    for ref in refs:
        if ref.column in columns:
            continue
        issues.append(
            ConfigIssue(
                doc.file,
                format_loc(ref.loc),
                f"{ref.what} {ref.column!r} is not a column of {source}; "
                f"{_suggest(ref.column, columns)}change or remove it (columns: {listed})",
                doc.line_of(ref.loc),
            )
        )
    return issues


def check_task(
    project: Project, task: str, why: str, doc: YamlDoc, params_doc: YamlDoc | None
) -> list[ConfigIssue]:
    """Gates and estimator that do not fit `task` (`why` says where the task came from)."""
    issues = []
    known = METRICS[task]
    other = "regression" if task == "classification" else "classification"
    for name, stage in project.pipeline.stages.items():
        gated: list[tuple[Loc, str, tuple[str, ...]]] = [
            (("stages", name, "gates", m), m, known + GATED_ONLY[task] + ANY_TASK)
            for m in stage.gates
        ]
        gated += [
            (("stages", name, "slice_gates", m), m, known + GATED_ONLY[task] + SLICE_ONLY[task])
            for m in stage.slice_gates
        ]
        for loc, metric, allowed in gated:
            if metric in allowed:
                continue
            belongs = f" (a {other} metric)" if metric in METRICS[other] + GATED_ONLY[other] else ""
            issues.append(
                ConfigIssue(
                    doc.file,
                    format_loc(loc),
                    f"gate on {metric!r}{belongs}, but the task is {task} ({why}); "
                    f"{task} metrics are {', '.join(allowed)}: gate one of them, "
                    f"e.g. `{EXAMPLE_GATE[task]}`",
                    doc.line_of(loc),
                )
            )
    perf = project.pipeline.monitoring.performance
    if "metric" in perf.model_fields_set and perf.metric not in known:
        loc = ("monitoring", "performance", "metric")
        issues.append(
            ConfigIssue(
                doc.file,
                format_loc(loc),
                f"{perf.metric!r} is not a {task} metric ({why}); use one of {', '.join(known)}",
                doc.line_of(loc),
            )
        )
    issues += _check_estimator(project, task, why, params_doc)
    return issues


# scikit-learn's usual estimators, told without importing scikit-learn (2 s), so that
# `mlops check` stays fast; any other class (or a misspelt one) is imported and asked
_BOTH = [
    "RandomForest",
    "ExtraTrees",
    "GradientBoosting",
    "HistGradientBoosting",
    "DecisionTree",
    "ExtraTree",
    "KNeighbors",
    "RadiusNeighbors",
    "MLP",
    "SGD",
    "AdaBoost",
    "Bagging",
    "Voting",
    "Stacking",
    "Dummy",
    "PassiveAggressive",
]
KNOWN_KINDS = {
    "classification": [f"{n}Classifier" for n in _BOTH]
    + [
        "RidgeClassifier",
        "RidgeClassifierCV",
        "Perceptron",
        "LogisticRegression",
        "LogisticRegressionCV",
        "SVC",
        "NuSVC",
        "LinearSVC",
        "GaussianNB",
        "MultinomialNB",
        "BernoulliNB",
        "ComplementNB",
        "CategoricalNB",
        "LinearDiscriminantAnalysis",
        "QuadraticDiscriminantAnalysis",
    ],
    "regression": [f"{n}Regressor" for n in _BOTH]
    + [
        "LinearRegression",
        "Ridge",
        "RidgeCV",
        "Lasso",
        "LassoCV",
        "ElasticNet",
        "ElasticNetCV",
        "Lars",
        "LarsCV",
        "LassoLars",
        "LassoLarsCV",
        "LassoLarsIC",
        "OrthogonalMatchingPursuit",
        "BayesianRidge",
        "ARDRegression",
        "HuberRegressor",
        "TheilSenRegressor",
        "RANSACRegressor",
        "PoissonRegressor",
        "GammaRegressor",
        "TweedieRegressor",
        "QuantileRegressor",
        "SVR",
        "NuSVR",
        "LinearSVR",
        "KernelRidge",
        "IsotonicRegression",
    ],
}


def estimator_kind(path: str, root: Path | None = None) -> str | None:
    """`classification` or `regression` for a scikit-learn-style estimator class path, None
    when it is neither (a clusterer, a transformer) or its kind cannot be told. Raises
    ImportError/AttributeError when the class cannot be imported (scikit-learn's usual
    classes, `KNOWN_KINDS`, are told by name without importing it)."""
    import importlib

    module, _, cls_name = path.replace(":", ".").rpartition(".")
    if module.startswith("sklearn."):
        for kind, names in KNOWN_KINDS.items():
            if cls_name in names:
                return kind
    if root is not None:  # the project's own class (`module:Class`): from the project root
        from mlops.config.modules import import_class
        from mlops.errors import UsageError

        try:
            cls = import_class(path, root)
        except UsageError as exc:
            raise ImportError(exc.message) from None
    else:
        cls = getattr(importlib.import_module(module), cls_name)
    try:
        instance = cls()
    except Exception:
        return None
    from sklearn.base import is_classifier, is_regressor

    if is_classifier(instance):
        return "classification"
    if is_regressor(instance):
        return "regression"
    return None


def _check_estimator(
    project: Project, task: str, why: str, params_doc: YamlDoc | None
) -> list[ConfigIssue]:
    train = project.params.train
    if train is None or not any(s.kind == "train" for s in project.stages.values()):
        return []
    loc: Loc = ("train", "estimator")
    line = params_doc.line_of(loc) if params_doc else None
    try:
        kind = estimator_kind(train.estimator, project.root)
    except (ImportError, AttributeError) as exc:
        msg = f"cannot import {train.estimator!r} ({exc}); give a class path such as "
        return [ConfigIssue(PARAMS_FILE, "train.estimator", msg + EXAMPLE_ESTIMATOR[task], line)]
    if kind is None or kind == task:
        return []
    role = "classifier" if kind == "classification" else "regressor"
    want = "classifier" if task == "classification" else "regressor"
    return [
        ConfigIssue(
            PARAMS_FILE,
            "train.estimator",
            f"{train.estimator} is a {role}, but the task is {task} ({why}); use a {want} "
            f"such as {EXAMPLE_ESTIMATOR[task]} (and its hyper-parameters), or change "
            f"model.task in {PIPELINE_FILE}",
            line,
        )
    ]


def target_task(project: Project, path: Path | None, nrows: int | None = None) -> tuple[str, str]:
    """The task and why: declared in pipeline.yaml, or inferred from the target's values in the
    table at `path` (the first `nrows` rows of a CSV). ("", reason) when it cannot be told."""
    spec = project.pipeline.model
    if spec.task != "auto":
        return spec.task, "model.task in pipeline.yaml"
    if path is None or read_header(path) is None or spec.target not in (read_header(path) or []):
        return "", "no data to infer it from"
    from mlops.config.task import infer_task

    y = _read_column(path, spec.target, nrows)
    task = infer_task(y)
    kind = "float" if y.dtype.kind == "f" else "integer" if y.dtype.kind in "iu" else "text"
    return task, f"inferred from the {kind} values of {spec.target!r}; set model.task to choose"


def _read_column(path: Path, column: str, nrows: int | None) -> Any:
    import pandas as pd

    if path.is_dir():
        parts = sorted(q for q in path.rglob("*") if q.suffix.lower() in (".csv", ".parquet"))
        return pd.concat([_read_column(q, column, nrows) for q in parts], ignore_index=True)
    if path.suffix.lower() == ".csv":
        return pd.read_csv(path, usecols=[column], nrows=nrows)[column]
    return pd.read_parquet(path, columns=[column])[column]


def _docs(root: Path) -> tuple[YamlDoc, YamlDoc | None]:
    doc = read_yaml(root / PIPELINE_FILE, display=PIPELINE_FILE)
    params = root / PARAMS_FILE
    return doc, (read_yaml(params, display=PARAMS_FILE) if params.exists() else None)


def preflight_issues(
    project: Project, data: Path | None, *, source: Path | None = None, nrows: int | None = None
) -> list[ConfigIssue]:
    """Every problem pipeline.yaml has with the table at `data` (what the stages after ingest
    read) and with the ingest `source` file; either may be None (not checked)."""
    doc, params_doc = _docs(project.root)
    refs = column_refs(project)
    issues: list[ConfigIssue] = []
    source_cols = read_header(source) if source is not None else None
    if source_cols is not None and source is not None:
        rel = _rel(project, source)
        issues += check_columns([r for r in refs if r.source_only], source_cols, rel, doc)
    data_cols = read_header(data) if data is not None else None
    if data_cols is not None and data is not None:
        rel = _rel(project, data)
        # a column the data contract declares but the data lacks is a data problem: the
        # validate stage reports it with every other one (exit 3), so it is not repeated here
        contract = contract_columns(project)
        later = [r for r in refs if not r.source_only and r.column not in contract]
        issues += check_columns(later, data_cols, rel, doc)
    target_ok = data_cols is not None and project.pipeline.model.target in data_cols
    task, why = target_task(project, data if target_ok else None, nrows)
    if task:
        issues += check_task(project, task, why, doc, params_doc)
    return issues


def contract_columns(project: Project) -> set[str]:
    """The columns the validate stages' schemas declare (unreadable schemas declare none)."""
    from mlops.errors import MlopsError

    columns: set[str] = set()
    for st in project.stages.values():
        if st.kind != "validate":
            continue
        try:
            data = read_yaml(project.path(st.args.schema_), with_lines=False).data
        except (MlopsError, OSError, ValueError):  # ValueError: not UTF-8
            continue
        declared = data.get("columns") if isinstance(data, dict) else None
        if isinstance(declared, dict):
            columns.update(str(c) for c in declared)
    return columns


def _rel(project: Project, path: Path) -> str:
    try:
        return str(path.resolve().relative_to(project.root))
    except ValueError:
        return str(path)


def ingest_stages(project: Project) -> list[str]:
    return [name for name, st in project.stages.items() if st.kind == "ingest"]


def check_project_data(project: Project) -> None:
    """`mlops check`: the pre-flight checks against the input files that exist now (the
    ingest source's header, or the first built-in stage's input). Raises `ConfigError`."""
    data = source = None
    names = ingest_stages(project)
    if names:
        args = project.stages[names[0]].args
        if not args.source.startswith(NON_FILE_SOURCES):
            source = project.path(args.source)
            # without `columns:`, the stages after ingest see the source's columns
            data = source if not args.columns else None
    else:
        for st in project.stages.values():
            path = getattr(st.args, "input", None) if st.args is not None else None
            if path and project.path(path).exists():
                data = project.path(path)
                break
    issues = preflight_issues(project, data, source=source, nrows=10_000)
    if issues:
        raise ConfigError(issues, HINT)


def check_after_ingest(project: Project, stage: str) -> None:
    """`mlops run`, after ingest stage `stage`: its output against pipeline.yaml. Raises
    `ConfigError` listing every problem, before any later stage starts."""
    args = project.stages[stage].args
    source = None if args.source.startswith(NON_FILE_SOURCES) else project.path(args.source)
    issues = preflight_issues(project, project.path(args.output), source=source)
    if issues:
        raise ConfigError(issues, HINT)

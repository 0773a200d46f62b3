"""Turn each `pipeline.yaml` stage into a concrete DVC stage: command, deps, params, outs.

Built-in stages (`uses:`) get their command and file lists from their `with:` settings; `cmd:`
stages declare them. This is the single place that knows what each built-in reads and writes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

from mlops.config.models import (
    DEFAULT_PARAMS,
    WITH_MODELS,
    EvaluateWith,
    IngestWith,
    OutEntry,
    OutOptions,
    ParamEntry,
    Pipeline,
    SplitWith,
    Stage,
    TrainWith,
    ValidateWith,
)

PIPELINE_FILE = "pipeline.yaml"
PARAMS_FILE = "params.yaml"
STAGE_MODULE = "python -m mlops.stages"
NON_FILE_SOURCES = ("package:", "sklearn:")


@dataclass
class Output:
    path: str
    cache: bool = True
    persist: bool = False
    desc: str | None = None
    kind: str = "outs"  # outs | metrics | plots


@dataclass
class ResolvedStage:
    name: str
    kind: str | None  # the built-in's name, or None for a `cmd:` stage
    cmd: str | list[str]
    deps: list[str] = field(default_factory=list)
    params: list[ParamEntry] = field(default_factory=list)
    outs: list[Output] = field(default_factory=list)
    desc: str | None = None
    frozen: bool = False
    args: Any = None  # the validated `with:` model of a built-in
    generated: list[str] = field(default_factory=list)  # deps mlops writes before each run
    plot_defs: list[dict[str, Any]] = field(default_factory=list)  # dvc.yaml top-level plots

    @property
    def out_paths(self) -> list[str]:
        return [o.path for o in self.outs]


def norm(path: str) -> str:
    """Normalise a repository-relative path (`./a//b/` -> `a/b`)."""
    p = PurePosixPath(path)
    parts: list[str] = []
    for part in p.parts:
        if part == ".":
            continue
        parts.append(part)
    return str(PurePosixPath(*parts)) if parts else "."


def _outputs(entries: list[OutEntry], kind: str) -> list[Output]:
    out: list[Output] = []
    for entry in entries:
        if isinstance(entry, str):
            out.append(Output(norm(entry), kind=kind, cache=kind == "outs"))
        else:
            for path, opts in entry.items():
                opts = opts if isinstance(opts, OutOptions) else OutOptions(**opts)
                out.append(Output(norm(path), opts.cache, opts.persist, opts.desc, kind))
    return out


def _pipeline_params(name: str, *keys: str) -> dict[str, list[str]]:
    return {PIPELINE_FILE: [f"stages.{name}", *keys]}


MODEL_KEYS = ("model.name", "model.target", "model.task")

# files the evaluate stage writes into its `plots` directory, and how `dvc plots show` draws them
CONFUSION_FILE = "confusion.csv"  # one row per test row: actual, predicted
ROC_DIR = "roc"  # one file per class: fpr, tpr
PR_DIR = "precision_recall"  # one file per class: recall, precision
PREDICTED_FILE = "predicted.csv"  # regression: actual, predicted
RESIDUALS_FILE = "residuals.csv"  # regression: predicted, residual
SLICES_FILE = "slices.csv"  # one row per slice: slice, rows, metrics...
SLICE_BAR_METRIC = {"classification": "accuracy", "regression": "rmse"}


def plot_definitions(plots_dir: str, task: str) -> list[dict[str, Any]]:
    """Top-level `plots:` entries of dvc.yaml for the evaluate stage's plot files.

    With `task: auto` the task is only known after training, so both sets are declared and
    `dvc plots show` skips the set that was not written.
    """
    d = norm(plots_dir)
    defs: list[dict[str, Any]] = []
    if task in ("classification", "auto"):
        defs += [
            {
                f"{d}/{CONFUSION_FILE}": {
                    "template": "confusion",
                    "x": "actual",
                    "y": "predicted",
                    "title": "Confusion matrix (test set)",
                }
            },
            {
                f"{d}/{ROC_DIR}": {
                    "x": "fpr",
                    "y": "tpr",
                    "title": "ROC curve, one class against the rest",
                    "x_label": "false positive rate",
                    "y_label": "true positive rate",
                }
            },
            {
                f"{d}/{PR_DIR}": {
                    "x": "recall",
                    "y": "precision",
                    "title": "Precision-recall, one class against the rest",
                }
            },
        ]
    if task in ("regression", "auto"):
        defs += [
            {
                f"{d}/{PREDICTED_FILE}": {
                    "template": "scatter",
                    "x": "actual",
                    "y": "predicted",
                    "title": "Predicted against actual (test set)",
                }
            },
            {
                f"{d}/{RESIDUALS_FILE}": {
                    "template": "scatter",
                    "x": "predicted",
                    "y": "residual",
                    "title": "Residuals (test set)",
                }
            },
        ]
    for t in ("classification", "regression"):
        if task in (t, "auto"):
            metric = SLICE_BAR_METRIC[t]
            defs.append(
                {
                    f"Per-slice {metric}": {
                        "template": "bar_horizontal",
                        "x": metric,
                        "y": {f"{d}/{SLICES_FILE}": "slice"},
                        "title": f"{metric} per slice of the test set",
                    }
                }
            )
    return defs


def contract_path(pipeline: Pipeline) -> str | None:
    """The data contract (`data/schema.yaml`) of the first validate stage, if there is one."""
    for stage in pipeline.stages.values():
        if stage.uses == "validate":  # read leniently: the stage's own errors are reported there
            schema = (stage.with_ or {}).get("schema")
            return schema if isinstance(schema, str) else ValidateWith().schema_
    return None


# estimators whose fit reports per-iteration figures (mlops.stages.custom): the evaluate stage
# copies the train stage's curve into its plots directory
CURVE_FILE = "training_curve.csv"
CURVE_CLASSES = (
    "MLPClassifier",
    "MLPRegressor",
    "GradientBoostingClassifier",
    "GradientBoostingRegressor",
)


def _reports_curve(params_raw: dict[str, Any] | None) -> bool:
    train = (params_raw or {}).get("train") if isinstance(params_raw, dict) else None
    est = str((train or {}).get("estimator", "")) if isinstance(train, dict) else ""
    return est.startswith(("lightgbm", "xgboost")) or est.rpartition(".")[2] in CURVE_CLASSES


def code_deps(pipeline: Pipeline, root: Any) -> list[str]:
    """The files of the project's own modules (`model.trusted_types` found under `root`): the
    train stage depends on them, so changing a transformer retrains."""
    if root is None:
        return []
    from pathlib import Path

    from mlops.config.modules import module_files

    out: list[str] = []
    for t in pipeline.model.trusted_types:
        files = module_files(t.rpartition(".")[0], Path(root)) or []
        for f in files:
            rel = f.relative_to(root).as_posix()
            if rel not in out:
                out.append(rel)
    return out


def resolve_builtin(
    name: str,
    stage: Stage,
    args: Any,
    pipeline: Pipeline,
    params_raw: dict[str, Any] | None = None,
    root: Any = None,
) -> ResolvedStage:
    """Command, deps, params and outs of a built-in stage from its validated `with:`."""
    model = pipeline.model
    cmd = f"{STAGE_MODULE} {name}"
    params: list[ParamEntry] = [*DEFAULT_PARAMS.get(stage.uses or "", [])]
    deps: list[str] = []
    outs: list[Output] = []
    generated: list[str] = []
    plot_defs: list[dict[str, Any]] = []
    if isinstance(args, IngestWith):
        if not args.source.startswith(NON_FILE_SOURCES):
            deps.append(norm(args.source))
        dated = _dated_leaves(stage.with_)
        if dated:
            # DVC hashes every params value as JSON, and a YAML date is no JSON ("Object of
            # type date is not JSON serializable"): it tracks the other keys, and the dates
            # go into the command, so changing one reruns the stage (docs/architecture.md)
            keys = [f"stages.{name}.with.{k}" for k in _leaves(stage.with_) if k not in dated]
            params.append({PIPELINE_FILE: keys})
            cmd += "".join(f" --with {k}={v}" for k, v in dated.items())
        else:
            params.append(_pipeline_params(name))
        outs.append(Output(norm(args.output)))
    elif isinstance(args, ValidateWith):
        deps += [norm(args.input), norm(args.schema_)]
        params.append(_pipeline_params(name, "model.target"))
        outs.append(Output(norm(args.report), cache=False, desc="data validation report"))
        outs.append(Output(norm(args.profile), desc="statistics profile of the validated data"))
    elif isinstance(args, SplitWith):
        deps.append(norm(args.input))
        params.append(_pipeline_params(name, *MODEL_KEYS))
        outs.append(Output(norm(args.output)))
    elif isinstance(args, TrainWith):
        deps.append(norm(args.input))
        contract = contract_path(pipeline)
        if contract is not None:  # serving ranges come from the data contract
            deps.append(norm(contract))
        if isinstance(params_raw, dict) and "tune" in params_raw:
            params.append("tune")
        params.append(_pipeline_params(name, *MODEL_KEYS))
        outs.append(Output(model.fit_path, desc="fitted pipeline before evaluation"))
        deps += code_deps(pipeline, root)
    elif isinstance(args, EvaluateWith):
        deps += [norm(args.input), model.fit_path]
        params.append(_pipeline_params(name, *MODEL_KEYS, "data"))
        outs.append(Output(model.path, desc=f"model bundle of {model.name}"))
        outs.append(Output(norm(args.metrics), cache=False, kind="metrics"))
        outs.append(Output(norm(args.report), cache=False, desc="evaluation report"))
        outs.append(Output(norm(args.html), cache=False, desc="evaluation report with plots"))
        outs.append(Output(norm(args.plots), cache=False, desc="plot data (dvc plots show)"))
        plot_defs = plot_definitions(args.plots, model.task)
        if _reports_curve(params_raw):
            d = norm(args.plots)
            plot_defs.append(
                {f"{d}/{CURVE_FILE}": {"x": "step", "title": "Training curve, per iteration"}}
            )
        if any(g.not_worse_than for g in stage.gates.values()):
            deps.append(norm(args.baseline))
            generated.append(norm(args.baseline))
    # user-declared extras apply to built-ins too
    deps += [norm(d) for d in stage.deps]
    params += [p for p in stage.params if p not in params]
    outs += _outputs(stage.outs, "outs") + _outputs(stage.metrics, "metrics")
    outs += _outputs(stage.plots, "plots")
    return ResolvedStage(
        name,
        stage.uses,
        cmd,
        deps,
        params,
        outs,
        stage.desc,
        stage.frozen,
        args,
        generated,
        plot_defs,
    )


def _leaves(value: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """`{"span": {"from": d}}` -> `{"span.from": d}` (lists are leaves)."""
    out: dict[str, Any] = {}
    for key, v in value.items():
        if isinstance(v, dict) and v:
            out.update(_leaves(v, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = v
    return out


def _dated_leaves(value: dict[str, Any]) -> dict[str, str]:
    """The leaves of a `with:` that are YAML dates or datetimes, in ISO form."""
    import datetime

    return {k: v.isoformat() for k, v in _leaves(value).items() if isinstance(v, datetime.date)}


def resolve_cmd(name: str, stage: Stage) -> ResolvedStage:
    outs = _outputs(stage.outs, "outs") + _outputs(stage.metrics, "metrics")
    outs += _outputs(stage.plots, "plots")
    return ResolvedStage(
        name,
        None,
        stage.cmd or "",
        [norm(d) for d in stage.deps],
        list(stage.params),
        outs,
        stage.desc,
        stage.frozen,
    )


def with_model(stage: Stage) -> type | None:
    return WITH_MODELS.get(stage.uses) if stage.uses else None


def is_under(path: str, parent: str) -> bool:
    """True when `path` is `parent` or inside it."""
    return path == parent or path.startswith(parent.rstrip("/") + "/")


def add_implicit_edges(stages: dict[str, ResolvedStage], pipeline: Pipeline) -> None:
    """Order stages that DVC would otherwise see as independent.

    - a stage that reads a file a `validate` stage checks also depends on that stage's report, so
      nothing consumes data before it passed validation;
    - `after: [stage]` makes a stage depend on that stage's first output.
    """
    reports: dict[str, list[str]] = {}
    for st in stages.values():
        if st.kind == "validate":
            reports.setdefault(st.args.input, []).append(st.args.report)
    for st in stages.values():
        if st.kind == "validate":
            continue
        for dep in list(st.deps):
            for report in reports.get(dep, []):
                if report not in st.deps:
                    st.deps.append(report)
    for name, stage in pipeline.stages.items():
        for other in stage.after:
            if other in stages and stages[other].outs:
                first = stages[other].outs[0].path
                if first not in stages[name].deps:
                    stages[name].deps.append(first)

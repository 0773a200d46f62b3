"""The reference of pipeline.yaml and params.yaml, generated from the config models.

`render()` is docs/config.md (checked in CI by tests/test_config_docs.py; regenerate with
`python -m mlops.config.reference > docs/config.md`); `json_schema()` is what `mlops schema`
prints, so editors (the YAML language server) complete and check pipeline.yaml. A key's
description is its pydantic `Field(description=...)`, else the entry in `DESCRIPTIONS`; a key
with neither fails the test, so every key stays documented.
"""

from __future__ import annotations

import json
import types
import typing
from typing import Any

from pydantic import BaseModel

from mlops.config import models as m

DOC = "docs/config.md"

DESCRIPTIONS: dict[str, str] = {
    # the model card and notifications
    "ModelSpec.card": "Fields of the model card (reports/model-card.md), written by each run.",
    "CardSpec.intended_use": "What the model is for and who uses it.",
    "CardSpec.out_of_scope": "Uses the model is not meant for.",
    "CardSpec.limitations": "Known limitations, one per item.",
    "CardSpec.owners": "Who answers for the model (names or team addresses).",
    "CardSpec.ethical_considerations": "Risks and the people they may affect.",
    "CardSpec.references": "Links: papers, data sheets, tickets.",
    "MonitoringSpec.notify": "Where breaches, recoveries, failed deploys and rollbacks are sent.",
    "NotifySpec.urls": "apprise URLs (Slack, Teams, email, webhooks); `env:NAME` or `${NAME}` "
    "take a URL or its secret from the environment.",
    "NotifySpec.gitlab_issue": "Open a GitLab issue per breach episode and close it when it "
    "resolves (CI only; `true` or options).",
    "NotifySpec.on": "Which events notify.",
    "GitLabIssueSpec.enabled": "Open issues (false: keep the options, send nothing to GitLab).",
    "GitLabIssueSpec.labels": "Labels of the issues opened.",
    # added with the deployments and security work
    "ModelSpec.trusted_types": "Exact type names (`module.Class`) of your own classes a bundle may "
    "contain, on top of the built-in allow-list of scikit-learn, NumPy and SciPy types; "
    "everything else is refused when a bundle is loaded (exit 6).",
    "Environment.kubernetes": "Render Kubernetes manifests for this environment "
    "(`mlops manifests`, and on each `mlops deploy`) under deploy/k8s/ENV/.",
    "KubernetesSpec.namespace": "Namespace the objects are created in.",
    "KubernetesSpec.image": "The serving image (built from Dockerfile.serve by the CI job).",
    "KubernetesSpec.replicas": "Pods of the Deployment (ignored while `autoscale` is set).",
    "KubernetesSpec.resources": "Container requests and limits (cpu, memory).",
    "KubernetesSpec.autoscale": "A HorizontalPodAutoscaler on CPU utilisation.",
    "KubernetesSpec.workers": "`mlops serve --workers` inside each pod.",
    "KubernetesSpec.port": "The container and Service port.",
    "KubernetesSpec.service_type": "The Service's type.",
    "KubernetesSpec.config_repo": "Push the manifests to this separate git repository (the one "
    "Argo CD or Flux watches) instead of committing them under deploy/k8s/ENV/ here.",
    "ConfigRepository.url": "The config repository's git URL (no credentials: git's helper or "
    "an SSH key supplies them; MLOPS_GIT_TOKEN in CI).",
    "ConfigRepository.branch": "The branch Argo CD or Flux follows (it must exist).",
    "ConfigRepository.path": "The directory in that repository (default: MODEL/ENV).",
    "KubernetesResources.requests": "Requested `cpu` and `memory` (Kubernetes quantities).",
    "KubernetesResources.limits": "Limits for `cpu` and `memory` (Kubernetes quantities).",
    "KubernetesAutoscale.min": "Fewest pods.",
    "KubernetesAutoscale.max": "Most pods.",
    # pipeline.yaml
    "Pipeline.version": "Format version of this file; always 1.",
    "Pipeline.model": "The model this project trains.",
    "Pipeline.data": "Facts about the data that several stages use.",
    "Pipeline.remote": "The DVC remote data and models are pushed to.",
    "Pipeline.stages": "The pipeline: stage name -> a built-in (`uses:`) or a command (`cmd:`).",
    "Pipeline.environments": "Deployment environments: name -> how its version is chosen.",
    "Pipeline.monitoring": "What `mlops monitor` checks on live traffic, and what it does.",
    "Pipeline.canary": "Canary and shadow releases: steps, evidence needed, what aborts.",
    "Pipeline.engine": "Where built-in stages compute: `local` or a Dask cluster.",
    "ModelSpec.name": "Registry name (git tags `NAME@vX.Y.Z`); lowercase, digits, `-`, `_`.",
    "ModelSpec.target": "The column to predict.",
    "ModelSpec.task": "`classification`, `regression`, or `auto` (from the target's values: "
    "floats, or integers with more than 20 values, are regression).",
    "ModelSpec.description": "Free text, shown in the registry and dvc.yaml's `artifacts:`.",
    "ModelSpec.labels": "Labels of the artifact in dvc.yaml (GTO/DVC Studio).",
    "DataSpec.sensitive": "Columns whose groups are always reported as slices (fairness); "
    "they must exist in the data (checked before training).",
    "RemoteSpec.name": "The DVC remote's name.",
    "RemoteSpec.url": "A directory (relative to the project) or `s3://`, `gs://`, `azure://`, "
    "`ssh://`... Never credentials (environment variables only).",
    "RemoteSpec.options": "Other DVC settings of the remote (`endpointurl`, `region`, "
    "`profile`...); never secrets.",
    "Stage.uses": "A built-in stage: `ingest`, `validate`, `split`, `train`, `evaluate`.",
    "Stage.cmd": "Any command (instead of `uses:`), run by DVC from the project root.",
    "Stage.with": "Settings of a built-in stage (see its section below).",
    "Stage.deps": "Files or directories the stage reads (a change reruns it).",
    "Stage.outs": "Files or directories it writes (cached by DVC); `{path: {cache, persist}}`.",
    "Stage.params": "Keys of params.yaml it reads (`train`, `train.C`), or `{file: [keys]}`.",
    "Stage.metrics": "Metrics files it writes (JSON/YAML), shown by `mlops run`.",
    "Stage.plots": "Plot data files it writes (`dvc plots show`).",
    "Stage.gates": "evaluate only: metric -> rule; a failed gate stops the run (exit 4). "
    "`converged: true` gates on the fit raising no ConvergenceWarning.",
    "Stage.slices": "evaluate only: columns (or pairs of columns) whose groups get metrics.",
    "Stage.slice_gates": "evaluate only: metric -> rule over every slice.",
    "Stage.after": "Stages this one runs after, though it reads none of their outputs.",
    "Stage.desc": "A description (dvc.yaml's `desc`).",
    "Stage.frozen": "Never rerun this stage (DVC's `frozen`).",
    "GateSpec.min": "The metric must be at least this.",
    "GateSpec.max": "The metric must be at most this (error metrics: rmse, mae).",
    "GateSpec.not_worse_than": "A baseline to compare with: an environment (`production`) or "
    "a git branch (`main`); passes on the first run, when there is none.",
    "GateSpec.tolerance": "How much worse than the baseline is still a pass.",
    "GateSpec.relative": "`tolerance` is a share of the baseline's value, not an amount.",
    "GateSpec.direction": "`higher` or `lower` is better (default: lower for rmse, mae, mse, "
    "log_loss; higher otherwise).",
    "SliceGateSpec.min": "Every slice's metric must be at least this.",
    "SliceGateSpec.max": "Every slice's metric must be at most this.",
    "SliceGateSpec.max_gap": "Best slice minus worst slice must be at most this.",
    "SliceGateSpec.min_rows": "Slices with fewer test rows are reported but not gated.",
    "SliceGateSpec.slices": "Only these slice specs (a column, or a pair); default: all.",
    "OutOptions.cache": "Store the output in DVC's cache (false: git tracks it).",
    "OutOptions.persist": "Keep the output while the stage runs (DVC's `persist`).",
    "OutOptions.desc": "A description of the output.",
    "Environment.track": "`latest`: deploy every version that passes its gates.",
    "Environment.pin": "A file (`deploy/production.yaml`) naming the version to run; changed "
    "through merge requests (`mlops promote`).",
    "Environment.target": "Where deployments go: a directory or an object-storage prefix. "
    "The variable MLOPS_TARGET_<ENV> (or MLOPS_TARGETS, a prefix: <prefix>/<env>) overrides "
    "it, e.g. in CI on container runners.",
    "Environment.promotion": "`merge_request` (review a change of the pin file) or `tag`.",
    "Environment.url": "Where the environment's server answers (for smoke tests and links).",
    "DriftSpec.method": "`auto` (Wasserstein/std for numbers, Jensen-Shannon for categories), "
    "or one of psi, jensenshannon, wasserstein, ks, chisquare.",
    "DriftSpec.threshold": "A column drifts above this distance (p-value below it for ks and "
    "chisquare); default per method.",
    "DriftSpec.share": "The data drifts when at least this share of columns drift.",
    "DriftSpec.columns": "Per-column thresholds: column -> threshold.",
    "DriftSpec.correction": "How the tests of one check share the false-alarm level `alpha`: "
    "`holm` (default; the chance of any false alarm stays at most alpha), `bonferroni`, `bh` "
    "(Benjamini-Hochberg: controls the share of false findings instead), or `none`.",
    "DriftSpec.alpha": "False-alarm level of a drift check, held across all its tests together "
    "(input drift per column, dataset drift, prediction drift): 0.05 means at most a 5% chance "
    "of a breach on traffic from the reference period.",
    "TrainWith.keep": "Identifier or time columns to keep as features anyway (they are left "
    "out by default).",
    "ValidateDriftSpec.on_drift": "`continue` (record), `retrain` (record and go on), or "
    "`stop` (fail the stage, exit 3).",
    "AnomalySpec.min_rows": "Fewer rows than this is an anomaly.",
    "AnomalySpec.max_row_change": "Row count change against the previous span (0.5 = +-50%).",
    "AnomalySpec.max_missing_increase": "Increase of a column's share of missing values "
    "against the previous span (absolute, 0.1 = 10 points).",
    "PerformanceSpec.metric": "Metric on labelled live traffic: accuracy, f1_macro... for "
    "classification; rmse, mae, mse, r2 for regression.",
    "PerformanceSpec.min": "The live metric must be at least this.",
    "PerformanceSpec.max_drop": "How far the live metric may fall behind the offline one.",
    "PerformanceSpec.max": "The live metric must be at most this (error metrics).",
    "PerformanceSpec.min_labels": "Labelled rows needed before performance is judged.",
    "PerformanceSpec.confidence": "Level of the reported intervals and of the rollback test.",
    "QualitySpec.max_rejected": "Largest share of requests refused (bad JSON, out of schema).",
    "HealthSpec.max_error_rate": "Largest share of requests answered with a server error.",
    "HealthSpec.max_latency_p99_ms": "Largest 99th percentile latency, in milliseconds.",
    "RetrainSpec.span": "How ingest's `span:` moves to the newest data: `widen` (keep "
    "`from`, move `to`), `slide` (move both), `keep`.",
    "RetrainSpec.stage": "The ingest stage whose span moves (default: the one with a span).",
    "RetrainSpec.deploy": "Environment a retrained version that passes its gates goes to.",
    "MonitoringSpec.drift": "Drift of live inputs against the training data.",
    "MonitoringSpec.performance": "Performance on labelled live traffic (/feedback).",
    "MonitoringSpec.on_breach": "`alert`, `retrain` (newest data, register, deploy), or "
    "`rollback`.",
    "MonitoringSpec.window": "How far back to look: `7d`, `24h`, `30m` (default: the whole log).",
    "MonitoringSpec.min_rows": "Fewer live rows than this: drift is not judged.",
    "MonitoringSpec.prediction_drift": "Drift of the predictions is a breach, not only reported.",
    "MonitoringSpec.quality": "Data quality of live inputs.",
    "MonitoringSpec.health": "Service health from the prediction log.",
    "MonitoringSpec.retrain": "What `on_breach: retrain` does.",
    "EngineSpec.kind": "`local` (this process) or `dask`; `engine: dask` is short for "
    "`{kind: dask}`.",
    "EngineSpec.scheduler": "The Dask scheduler's address, or `local` to start a cluster here "
    "(default: DASK_SCHEDULER_ADDRESS).",
    "EngineSpec.workers": "`scheduler: local`: worker processes.",
    "EngineSpec.threads_per_worker": "`scheduler: local`: threads per worker.",
    "EngineSpec.memory_limit": "`scheduler: local`: memory per worker (`2GiB`).",
    "EngineSpec.partition_mb": "Size of the partitions a CSV is cut into.",
    "EngineSpec.timeout": "Seconds to wait for the scheduler.",
    # with: of the built-in stages
    "IngestWith.source": "A .csv/.parquet file or a directory of them (relative to the "
    "project), `package:palmerpenguins`, or `sklearn:NAME` (iris, wine, breast_cancer, "
    "diabetes). With `engine: dask`, also a glob or a URL.",
    "IngestWith.output": "Where the rows go (.csv or .parquet; a directory of Parquet parts "
    "otherwise).",
    "IngestWith.span": "Keep only rows whose column lies in a range (a time range: see "
    "docs/howto.md, 'Time spans').",
    "IngestWith.columns": "Keep only these columns (default: all).",
    "SpanSpec.column": "The column the range applies to (must exist in the source).",
    "SpanSpec.from": "Lower bound, inclusive: a date (`2012-01-01`), a datetime, a number or text.",
    "SpanSpec.to": "Upper bound, inclusive (a date includes that whole day).",
    "SpanSpec.format": "How the column writes dates (`%d/%m/%Y`, pandas.to_datetime); "
    "default: parsed as ISO and common forms. A cell that does not parse stops ingest.",
    "ValidateWith.input": "The data to check.",
    "ValidateWith.schema": "The data contract (pandera YAML; `mlops validate --infer` drafts it).",
    "ValidateWith.report": "The validation report (JSON).",
    "ValidateWith.profile": "Statistics of this span (drift reference of the next one).",
    "ValidateWith.drift": "Drift against the previous span, and what it means for the run.",
    "ValidateWith.anomalies": "Anomalies that stop the run besides the schema.",
    "SplitWith.input": "The validated data to split.",
    "SplitWith.output": "Directory of train.parquet and test.parquet.",
    "TrainWith.input": "The training rows.",
    "TrainWith.exclude": "Columns that are not features (ids, dates); must exist in the data.",
    "TrainWith.incremental": "`true` or `{epochs, sample_rows}`: train over chunks with "
    "`partial_fit`.",
    "IncrementalSpec.epochs": "Passes over the chunks.",
    "IncrementalSpec.sample_rows": "Rows the preprocessing learns from.",
    "EvaluateWith.input": "The test rows.",
    "EvaluateWith.metrics": "Metrics file (JSON), what gates and `mlops run` read.",
    "EvaluateWith.report": "Markdown report: metrics, gates, slices, tuning.",
    "EvaluateWith.html": "The same report for people, with the plots inline.",
    "EvaluateWith.plots": "Plot data for `dvc plots show`.",
    "EvaluateWith.baseline": "Baselines of `not_worse_than` gates (written by mlops).",
    # params.yaml
    "Params.split": "How the split stage divides the data.",
    "Params.train": "The estimator and its hyper-parameters.",
    "Params.tune": "A hyper-parameter search with cross-validation in the train stage.",
    "SplitParams.test_size": "Share of rows held out for evaluation.",
    "SplitParams.seed": "Random seed of the split.",
    "SplitParams.stratify": "Keep each class's share in both parts (classification only).",
    "TrainParams.estimator": "A scikit-learn-style class path: a classifier for "
    "classification (sklearn.linear_model.LogisticRegression), a regressor for regression "
    "(sklearn.linear_model.Ridge), lightgbm.LGBMClassifier (the `boost` extra), or the "
    "project's own as `module:Class`. Every other key is one of its hyper-parameters.",
    "TrainParams.features": "The project's own transformers (`module:Class`, or "
    "`{class: module:Class, params: {...}}`), applied in order before the built-in "
    "preprocessing; each type must be listed in `model.trusted_types`.",
    "TrainParams.preprocess": "Follow `features` with the built-in preprocessing (impute, "
    "scale, one-hot); `false`: the estimator gets the features' output as it is.",
    "FeatureStep.class": "The transformer's class, `module:Class` in the project's code.",
    "FeatureStep.params": "Keyword arguments of its constructor.",
    "TuneParams.method": "`grid`, `random` or `halving`.",
    "TuneParams.space": "Hyper-parameter -> list of values, or `{loguniform|uniform|randint: "
    "[lo, hi]}`.",
    "TuneParams.cv": "Cross-validation folds.",
    "TuneParams.scoring": "A scikit-learn scorer name (default: accuracy, or r2).",
    "TuneParams.n_iter": "random: candidates drawn.",
    "TuneParams.factor": "halving: the reduction factor.",
    "TuneParams.seed": "Random seed of the search.",
    "TuneParams.n_jobs": "Parallel fits (-1: every core).",
    # deploy/<env>.yaml
    "DeployPin.model": "The model's registry name.",
    "DeployPin.version": "The registered version to run (`v1.2.0`).",
}

# (title, anchor, model, where the keys live)
SECTIONS: list[tuple[str, type[BaseModel], str]] = [
    ("pipeline.yaml", m.Pipeline, "top level"),
    ("model", m.ModelSpec, "`model:`"),
    ("data", m.DataSpec, "`data:`"),
    ("remote", m.RemoteSpec, "`remote:`"),
    ("stage", m.Stage, "`stages.NAME:`"),
    ("gate", m.GateSpec, "`stages.NAME.gates.METRIC:`"),
    ("slice gate", m.SliceGateSpec, "`stages.NAME.slice_gates.METRIC:`"),
    ("output options", m.OutOptions, "`stages.NAME.outs[i].PATH:`"),
    ("with: ingest", m.IngestWith, "`stages.NAME.with:` of `uses: ingest`"),
    ("span", m.SpanSpec, "`stages.NAME.with.span:`"),
    ("with: validate", m.ValidateWith, "`stages.NAME.with:` of `uses: validate`"),
    ("validate drift", m.ValidateDriftSpec, "`stages.NAME.with.drift:`"),
    ("anomalies", m.AnomalySpec, "`stages.NAME.with.anomalies:`"),
    ("with: split", m.SplitWith, "`stages.NAME.with:` of `uses: split`"),
    ("with: train", m.TrainWith, "`stages.NAME.with:` of `uses: train`"),
    ("incremental", m.IncrementalSpec, "`stages.NAME.with.incremental:`"),
    ("with: evaluate", m.EvaluateWith, "`stages.NAME.with:` of `uses: evaluate`"),
    ("environment", m.Environment, "`environments.NAME:`"),
    ("kubernetes", m.KubernetesSpec, "`environments.NAME.kubernetes:`"),
    ("kubernetes resources", m.KubernetesResources, "`environments.NAME.kubernetes.resources:`"),
    ("kubernetes autoscale", m.KubernetesAutoscale, "`environments.NAME.kubernetes.autoscale:`"),
    ("config repository", m.ConfigRepository, "`environments.NAME.kubernetes.config_repo:`"),
    ("monitoring", m.MonitoringSpec, "`monitoring:`"),
    ("canary", m.CanarySpec, "`canary:`"),
    ("notify", m.NotifySpec, "`monitoring.notify:`"),
    ("gitlab issue", m.GitLabIssueSpec, "`monitoring.notify.gitlab_issue:`"),
    ("model card", m.CardSpec, "`model.card:`"),
    ("drift", m.DriftSpec, "`monitoring.drift:`"),
    ("performance", m.PerformanceSpec, "`monitoring.performance:`"),
    ("quality", m.QualitySpec, "`monitoring.quality:`"),
    ("health", m.HealthSpec, "`monitoring.health:`"),
    ("retrain", m.RetrainSpec, "`monitoring.retrain:`"),
    ("engine", m.EngineSpec, "`engine:`"),
    ("params.yaml", m.Params, "params.yaml, top level"),
    ("split params", m.SplitParams, "params.yaml `split:`"),
    ("train params", m.TrainParams, "params.yaml `train:`"),
    ("feature step", m.FeatureStep, "params.yaml `train.features[i]:`"),
    ("tune params", m.TuneParams, "params.yaml `tune:`"),
    ("deploy pin", m.DeployPin, "deploy/ENV.yaml"),
]


def anchor(model: type[BaseModel]) -> str:
    """The section of `model` in docs/config.md: `docs/config.md#modelspec`."""
    return f"{DOC}#{model.__name__.lower()}"


def _key(name: str, field: Any) -> str:
    return field.alias or name


def description(model: type[BaseModel], name: str) -> str:
    field = model.model_fields[name]
    if field.description:
        return field.description
    for cls in model.__mro__:
        text = DESCRIPTIONS.get(f"{cls.__name__}.{_key(name, field)}")
        if text:
            return text
    return ""


def undocumented() -> list[str]:
    """`Model.key` of every key of a documented model that has no description."""
    return [
        f"{model.__name__}.{_key(n, f)}"
        for _, model, _ in SECTIONS
        for n, f in model.model_fields.items()
        if not description(model, n)
    ]


def _type_text(tp: Any) -> str:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is typing.Annotated:
        return _type_text(args[0])
    if origin in (typing.Union, types.UnionType):
        parts = [_type_text(a) for a in args if a is not type(None)]
        text = " or ".join(dict.fromkeys(parts))
        return text + (" (optional)" if type(None) in args else "")
    if origin is typing.Literal:
        return " \\| ".join(f"`{a}`" for a in args)
    if origin in (list, tuple):
        return f"list of {_type_text(args[0])}" if args else "list"
    if origin is dict:
        return f"map of {_type_text(args[0])} to {_type_text(args[1])}" if args else "map"
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return f"[{tp.__name__}](#{tp.__name__.lower()})"
    if tp is Any:
        return "any"
    return getattr(tp, "__name__", str(tp))


def _default(field: Any) -> str:
    if field.is_required():
        return "**required**"
    if field.default_factory is not None:
        value = field.default_factory()
        if isinstance(value, BaseModel):
            return "(see section)"
        return f"`{json.dumps(value)}`"
    return f"`{json.dumps(field.default, default=str)}`"


def _first_paragraph(model: type[BaseModel]) -> str:
    doc = (model.__doc__ or "").strip()
    if not doc or doc.startswith(("Usage docs", "A base class")):
        return ""
    return " ".join(doc.split("\n\n")[0].split())


def render() -> str:
    """docs/config.md: every key of pipeline.yaml, params.yaml and deploy/ENV.yaml."""
    out = [
        "# Configuration reference",
        "",
        "Generated from the config models (`mlops/config/models.py`) by "
        "`python -m mlops.config.reference > docs/config.md`; a test fails when it is stale. "
        "Unknown keys are errors. `mlops schema` prints the same as JSON Schema for editors "
        "(see docs/howto.md, 'Editor completion'). `mlops check` checks both files, and the "
        "columns, metrics and estimator against the data.",
        "",
    ]
    for title, model, where in SECTIONS:
        out += [f'<a id="{model.__name__.lower()}"></a>', f"## {title}", "", f"Where: {where}."]
        intro = _first_paragraph(model)
        if intro:
            out += ["", intro]
        out += ["", "| key | type | default | meaning |", "|---|---|---|---|"]
        for name, field in model.model_fields.items():
            text = description(model, name).replace("|", "\\|")
            out.append(
                f"| `{_key(name, field)}` | {_type_text(field.annotation)} | "
                f"{_default(field)} | {text} |"
            )
        out.append("")
    return "\n".join(out)


def _describe_schema(schema: dict[str, Any], models: dict[str, type[BaseModel]]) -> None:
    for name, definition in schema.get("$defs", {}).items():
        model = models.get(name)
        if model is None:
            continue
        definition["description"] = (
            _first_paragraph(model) + f" Reference: {anchor(model)}"
        ).strip()
        props = definition.get("properties", {})
        for fname, field in model.model_fields.items():
            prop = props.get(_key(fname, field))
            if prop is not None and description(model, fname):
                prop["description"] = description(model, fname)


def json_schema() -> dict[str, Any]:
    """JSON Schema of pipeline.yaml, with each built-in's `with:` keys by its `uses:`."""
    schema = m.Pipeline.model_json_schema(by_alias=True, mode="validation")
    defs = schema.setdefault("$defs", {})
    for model in m.WITH_MODELS.values():
        sub = model.model_json_schema(by_alias=True, ref_template="#/$defs/{model}")
        defs.update(sub.pop("$defs", {}))
        defs[model.__name__] = sub
    stage = defs["Stage"]
    stage["allOf"] = [
        {
            "if": {"properties": {"uses": {"const": kind}}, "required": ["uses"]},
            "then": {"properties": {"with": {"$ref": f"#/$defs/{model.__name__}"}}},
        }
        for kind, model in m.WITH_MODELS.items()
    ]
    models = {model.__name__: model for _, model, _ in SECTIONS}
    _describe_schema(schema, models)
    props = schema.get("properties", {})
    for fname, field in m.Pipeline.model_fields.items():
        prop = props.get(_key(fname, field))
        if prop is not None:
            prop["description"] = description(m.Pipeline, fname)
    return {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "$id": "https://mlops.invalid/pipeline.schema.json",
        **schema,
        "title": "mlops pipeline.yaml",
        "description": f"Every key: {DOC}",
    }


def section_for(loc: tuple[str | int, ...], data: Any, *, params: bool = False) -> str:
    """The docs/config.md section of the model that holds the key at `loc` (in the raw
    pipeline.yaml `data`, or params.yaml with `params`)."""
    return anchor(model_at(loc, data, params=params))


def model_at(loc: tuple[str | int, ...], data: Any, *, params: bool = False) -> type[BaseModel]:
    """The config model whose key is the last part of `loc`."""
    model: type[BaseModel] = m.Params if params else m.Pipeline
    raw = data
    parts = list(loc)
    i = 0
    while i < len(parts) - 1:
        part = parts[i]
        raw = raw.get(part) if isinstance(raw, dict) else None
        field = next((f for n, f in model.model_fields.items() if _key(n, f) == part), None)
        if field is None:
            break
        if model is m.Stage and part == "with":
            uses = data_at(data, parts[:i]).get("uses") if data is not None else None
            nxt = m.WITH_MODELS.get(uses) if isinstance(uses, str) else None
            if nxt is None:
                break
            model, i = nxt, i + 1
            continue
        nxt_model, skip = _inner_model(field.annotation)
        if nxt_model is None:
            break
        model, i = nxt_model, i + 1 + skip
    return model


def unknown_key_message(loc: tuple[str | int, ...], data: Any, *, params: bool = False) -> str:
    """What `mlops check` says of an unknown key: the keys allowed there and their section."""
    model = model_at(loc, data, params=params)
    keys = [_key(n, f) for n, f in model.model_fields.items()]
    return f"unknown key; allowed here: {', '.join(keys)} (see {anchor(model)})"


def data_at(data: Any, loc: list[str | int]) -> dict[str, Any]:
    for part in loc:
        data = data.get(part) if isinstance(data, dict) else None
    return data if isinstance(data, dict) else {}


def _inner_model(tp: Any) -> tuple[type[BaseModel] | None, int]:
    """The model inside an annotation, and how many keys (dict names, list indexes) lie
    between the field and that model's keys."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is typing.Annotated:
        return _inner_model(args[0])
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return tp, 0
    if origin in (typing.Union, types.UnionType):
        for a in args:
            found, skip = _inner_model(a)
            if found is not None:
                return found, skip
        return None, 0
    if origin is dict:
        found, skip = _inner_model(args[1])
        return found, skip + 1
    if origin is list:
        found, skip = _inner_model(args[0])
        return found, skip + 1
    return None, 0


if __name__ == "__main__":
    print(render(), end="")

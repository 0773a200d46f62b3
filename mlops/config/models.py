"""Pydantic models of `pipeline.yaml` and `params.yaml`.

Every model forbids unknown keys, so a typo is an error with its key path rather than a silently
ignored setting. Semantic checks that need the whole file (missing dependencies, duplicate outputs,
cycles) live in `mlops.config.check`.

This module holds the top of `pipeline.yaml` (model, data, remote, stages, engine, canary) and
re-exports the sections kept beside it, so `mlops.config.models.X` names every model:
`base` (Strict, name grammars), `environments`, `monitoring`, `params` (stages' `with:`,
params.yaml, deploy pins).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from mlops.config.base import NAME_PATTERN, TYPE_NAME_PATTERN, Strict
from mlops.config.environments import (
    K8S_NAME,
    K8S_QUANTITY,
    ConfigRepository,
    Environment,
    KubernetesAutoscale,
    KubernetesResources,
    KubernetesSpec,
)
from mlops.config.monitoring import (
    NOTIFY_EVENTS_DEFAULT,
    AnomalySpec,
    DriftSpec,
    GitLabIssueSpec,
    HealthSpec,
    MonitoringSpec,
    NotifyEvent,
    NotifySpec,
    PerformanceSpec,
    QualitySpec,
    RetrainSpec,
    ValidateDriftSpec,
)
from mlops.config.params import (
    CLASS_PATH_PATTERN,
    DEFAULT_PARAMS,
    DISTRIBUTIONS,
    WITH_MODELS,
    DeployPin,
    EvaluateWith,
    FeatureStep,
    IncrementalSpec,
    IngestWith,
    Params,
    SpanBound,
    SpanSpec,
    SplitParams,
    SplitWith,
    TrainParams,
    TrainWith,
    TuneParams,
    ValidateWith,
)

BUILTIN_STAGES = ("ingest", "validate", "split", "train", "evaluate")


class CardSpec(Strict):
    """`model.card:` what the model card (`reports/model-card.md`) says in people's words;
    data, metrics, slices, gates and lineage come from the run."""

    intended_use: str = ""
    out_of_scope: str = ""
    limitations: list[str] = Field(default_factory=list)
    owners: list[str] = Field(default_factory=list)
    ethical_considerations: str = ""
    references: list[str] = Field(default_factory=list)


class ModelSpec(Strict):
    """The model this project trains: its registry name and its label column."""

    name: Annotated[str, Field(pattern=NAME_PATTERN, max_length=100)]
    target: str
    task: Literal["auto", "classification", "regression"] = "auto"
    description: str = ""
    labels: list[str] = Field(default_factory=list)
    # the project's own classes a model bundle may contain, by exact `module.Class` name (loading
    # refuses every type that is neither on mlops' allow-list nor here; see docs/threat-model.md)
    trusted_types: list[Annotated[str, Field(pattern=TYPE_NAME_PATTERN)]] = Field(
        default_factory=list
    )

    @field_validator("trusted_types")
    @classmethod
    def _no_builtins(cls, v: list[str]) -> list[str]:
        bad = [t for t in v if t.split(".", 1)[0] in ("builtins", "__builtin__")]
        if bad:
            raise ValueError(f"{', '.join(bad)}: a builtins name is never trusted")
        return v

    card: CardSpec = Field(default_factory=CardSpec)

    @property
    def path(self) -> str:
        """Where the model bundle lives: `models/<name>`."""
        return f"models/{self.name}"

    @property
    def fit_path(self) -> str:
        """Where the train stage writes the fitted pipeline before evaluate packages it."""
        return f"build/{self.name}"


class DataSpec(Strict):
    sensitive: list[str] = Field(default_factory=list)


CREDENTIAL_KEYS_RE = (
    r"(secret|password|passphrase|token|access_key|account_key|connection_string|sas)"
)


class RemoteSpec(Strict):
    """The DVC remote data and models are pushed to (embedded default: a local directory).

    `url` is any DVC remote: a directory, `s3://bucket/prefix` (the `s3` extra), `gs://`,
    `azure://`, `ssh://`, ... `options` are the remote's other DVC settings that are not
    secrets (`endpointurl`, `region`, `profile`, ...): credentials come from the environment
    only (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, ...), never from this file.
    """

    name: str = Field("local", pattern=r"^[A-Za-z0-9_-]+$")
    url: str = ".mlops/remote"
    options: dict[str, str | int | float | bool] = Field(default_factory=dict)

    @field_validator("url")
    @classmethod
    def _no_userinfo(cls, v: str) -> str:
        import re

        if re.match(r"^[a-z][a-z0-9+.-]*://[^/@]*:[^/@]*@", v):
            raise ValueError(
                "credentials do not belong in the remote URL; give them in environment "
                "variables (e.g. AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)"
            )
        return v

    @field_validator("options")
    @classmethod
    def _no_secrets(cls, v: dict[str, Any]) -> dict[str, Any]:
        import re

        for key in v:
            if key == "url":
                raise ValueError("`url` is set beside `options`, not inside it")
            if re.search(CREDENTIAL_KEYS_RE, key, re.I):
                raise ValueError(
                    f"{key}: secrets never go in pipeline.yaml (it is committed); set the "
                    "matching environment variable on the machine (e.g. AWS_SECRET_ACCESS_KEY)"
                )
        return v


class GateSpec(Strict):
    """A quality gate on one metric: absolute bounds and/or a comparison with a baseline."""

    min: float | None = None
    max: float | None = None
    not_worse_than: str | None = None
    tolerance: float = Field(0.0, ge=0)
    relative: bool = False
    direction: Literal["higher", "lower"] | None = None

    @model_validator(mode="after")
    def _one_rule(self) -> GateSpec:
        if self.min is None and self.max is None and self.not_worse_than is None:
            raise ValueError("a gate needs at least one of min, max, not_worse_than")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min}) is greater than max ({self.max})")
        return self


class SliceGateSpec(Strict):
    """A gate on one metric across slices: every slice within bounds, best-worst gap bounded.

    Slices with fewer than `min_rows` test rows are reported but not gated (their metrics are
    noise). `slices` restricts the gate to some slice specs (a column, or a list of two).
    """

    min: float | None = None
    max: float | None = None
    max_gap: float | None = Field(None, ge=0)
    min_rows: int = Field(10, ge=1)
    slices: list[str | list[str]] = Field(default_factory=list)

    @model_validator(mode="after")
    def _one_rule(self) -> SliceGateSpec:
        if self.min is None and self.max is None and self.max_gap is None:
            raise ValueError("a slice gate needs at least one of min, max, max_gap")
        return self


class OutOptions(Strict):
    cache: bool = True
    persist: bool = False
    desc: str | None = None


OutEntry = str | dict[str, OutOptions]
ParamEntry = str | dict[str, list[str]]


class Stage(Strict):
    """One stage: a built-in (`uses:`) configured by `with:`, or any command (`cmd:`)."""

    uses: Literal["ingest", "validate", "split", "train", "evaluate"] | None = None
    cmd: str | list[str] | None = None
    with_: dict[str, Any] = Field(default_factory=dict, alias="with")
    deps: list[str] = Field(default_factory=list)
    outs: list[OutEntry] = Field(default_factory=list)
    params: list[ParamEntry] = Field(default_factory=list)
    metrics: list[OutEntry] = Field(default_factory=list)
    plots: list[OutEntry] = Field(default_factory=list)
    gates: dict[str, GateSpec] = Field(default_factory=dict)
    slices: list[str | list[str]] = Field(default_factory=list)

    @field_validator("gates", mode="before")
    @classmethod
    def _converged(cls, v: Any) -> Any:
        # `converged: true`: the fit raised no ConvergenceWarning (a 0/1 figure, min 1)
        if isinstance(v, dict) and "converged" in v and not isinstance(v["converged"], dict):
            if v["converged"] is not True:
                raise ValueError("`converged:` takes `true` (the fit must converge)")
            v = {**v, "converged": {"min": 1.0}}
        return v

    slice_gates: dict[str, SliceGateSpec] = Field(default_factory=dict)
    after: list[str] = Field(default_factory=list)
    desc: str | None = None
    frozen: bool = False

    @model_validator(mode="after")
    def _uses_or_cmd(self) -> Stage:
        if (self.uses is None) == (self.cmd is None):
            raise ValueError("a stage needs exactly one of `uses:` (a built-in stage) or `cmd:`")
        if self.cmd is not None and self.with_:
            raise ValueError("`with:` configures built-in stages; a `cmd:` stage takes none")
        if self.uses not in ("evaluate", None) and (self.gates or self.slices or self.slice_gates):
            raise ValueError("`gates:`, `slices:` and `slice_gates:` belong to an `evaluate` stage")
        return self

    @field_validator("slices")
    @classmethod
    def _slices(cls, v: list[str | list[str]]) -> list[str | list[str]]:
        for spec in v:
            if isinstance(spec, list) and not 1 <= len(spec) <= 2:
                raise ValueError("a slice is a column or a list of two columns (a cross)")
        return v


class EngineSpec(Strict):
    """`engine:` - where the built-in stages compute: this process (`local`) or a Dask cluster.

    `engine: dask` reads the scheduler's address from `scheduler:`, else from the
    `DASK_SCHEDULER_ADDRESS` environment variable; `scheduler: local` starts a cluster of
    `workers` processes on this machine for each stage. `partition_mb` is the size of the
    partitions a CSV is cut into; `timeout` the seconds to wait for the scheduler.
    """

    kind: Literal["local", "dask"] = "local"
    scheduler: str | None = None
    workers: int | None = Field(None, ge=1)  # scheduler: local only
    threads_per_worker: int | None = Field(None, ge=1)  # scheduler: local only
    memory_limit: str | None = None  # per worker, scheduler: local only ("2GiB")
    partition_mb: int = Field(64, ge=1)
    timeout: float = Field(10.0, gt=0)

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        return {"kind": data} if isinstance(data, str) else data

    @model_validator(mode="after")
    def _local_only(self) -> EngineSpec:
        if self.kind == "local" and self.scheduler is not None:
            raise ValueError("`scheduler:` needs `kind: dask`")
        local_cluster = self.scheduler == "local"
        for key in ("workers", "threads_per_worker", "memory_limit"):
            if getattr(self, key) is not None and not local_cluster:
                raise ValueError(f"`{key}:` sizes a cluster mlops starts (`scheduler: local`)")
        return self


class CanarySpec(Strict):
    """`canary:`: how a canary or shadow release steps forward, and what aborts it."""

    steps: list[Annotated[int, Field(ge=1, le=100)]] = Field(
        default_factory=lambda: [10, 50, 100],
        description="Shares of traffic (percent) the canary answers, step by step; the last "
        "step is 100, and promoting into it makes the candidate the live version.",
    )
    min_requests: int = Field(
        200,
        ge=1,
        description="Requests each side (canary or shadow, and live) must have answered in "
        "the current step before it may be promoted.",
    )
    alpha: float = Field(
        0.05,
        gt=0,
        lt=1,
        description="Family-wise false-alarm rate of the comparisons of one step (error "
        "rate, latency, online metric, prediction drift; Holm's correction).",
    )
    max_error_rate: float = Field(
        0.01,
        ge=0,
        le=1,
        description="A canary whose share of 5xx answers exceeds this is aborted, "
        "whatever live does.",
    )
    max_latency_ratio: float = Field(
        1.5,
        ge=1,
        description="Latency counts as worse only when the canary's p99 is at least this "
        "times live's p99 and the difference is significant.",
    )
    abort_on: list[Literal["errors", "latency", "metric", "prediction_drift"]] = Field(
        default_factory=lambda: ["errors", "latency", "metric"],  # type: ignore[arg-type]
        description="Which findings abort the rollout (default: more errors, slower, or a "
        "worse online metric than live); prediction drift is reported either way.",
    )

    @field_validator("steps")
    @classmethod
    def _increasing(cls, v: list[int]) -> list[int]:
        if not v or v != sorted(set(v)) or v[-1] != 100:
            raise ValueError("steps must increase and end at 100 (for example [10, 50, 100])")
        return v


class Pipeline(Strict):
    """The whole `pipeline.yaml`."""

    version: Literal[1] = 1
    model: ModelSpec
    data: DataSpec = Field(default_factory=DataSpec)
    remote: RemoteSpec = Field(default_factory=RemoteSpec)
    stages: dict[Annotated[str, Field(pattern=NAME_PATTERN)], Stage]
    environments: dict[Annotated[str, Field(pattern=NAME_PATTERN)], Environment] = Field(
        default_factory=dict
    )
    monitoring: MonitoringSpec = Field(default_factory=MonitoringSpec)
    engine: EngineSpec = Field(default_factory=EngineSpec)
    canary: CanarySpec = Field(default_factory=CanarySpec)

    @field_validator("stages")
    @classmethod
    def _not_empty(cls, v: dict[str, Stage]) -> dict[str, Stage]:
        if not v:
            raise ValueError("a pipeline needs at least one stage")
        return v


__all__ = [
    "BUILTIN_STAGES",
    "CLASS_PATH_PATTERN",
    "CREDENTIAL_KEYS_RE",
    "DEFAULT_PARAMS",
    "DISTRIBUTIONS",
    "K8S_NAME",
    "K8S_QUANTITY",
    "NAME_PATTERN",
    "NOTIFY_EVENTS_DEFAULT",
    "TYPE_NAME_PATTERN",
    "WITH_MODELS",
    "AnomalySpec",
    "CanarySpec",
    "CardSpec",
    "ConfigRepository",
    "DataSpec",
    "DeployPin",
    "DriftSpec",
    "EngineSpec",
    "Environment",
    "EvaluateWith",
    "FeatureStep",
    "GateSpec",
    "GitLabIssueSpec",
    "HealthSpec",
    "IncrementalSpec",
    "IngestWith",
    "KubernetesAutoscale",
    "KubernetesResources",
    "KubernetesSpec",
    "ModelSpec",
    "MonitoringSpec",
    "NotifyEvent",
    "NotifySpec",
    "OutEntry",
    "OutOptions",
    "ParamEntry",
    "Params",
    "PerformanceSpec",
    "Pipeline",
    "QualitySpec",
    "RemoteSpec",
    "RetrainSpec",
    "SliceGateSpec",
    "SpanBound",
    "SpanSpec",
    "SplitParams",
    "SplitWith",
    "Stage",
    "Strict",
    "TrainParams",
    "TrainWith",
    "TuneParams",
    "ValidateDriftSpec",
    "ValidateWith",
]

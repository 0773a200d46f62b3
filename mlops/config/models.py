"""Pydantic models of `pipeline.yaml` and `params.yaml`.

Every model forbids unknown keys, so a typo is an error with its key path rather than a silently
ignored setting. Semantic checks that need the whole file (missing dependencies, duplicate outputs,
cycles) live in `mlops.config.check`.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from mlops.config.versions import SemVer  # the one version grammar (the registry's tags use it)

BUILTIN_STAGES = ("ingest", "validate", "split", "train", "evaluate")
NAME_PATTERN = r"^[a-z0-9]([a-z0-9_-]*[a-z0-9])?$"  # a GTO artifact name, usable in tags and paths
TYPE_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+$"  # module.Class


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


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


K8S_NAME = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"  # a DNS label: namespaces, Secrets
K8S_QUANTITY = r"^[0-9]+(\.[0-9]+)?(m|k|Ki|M|Mi|G|Gi|T|Ti)?$"  # 500m, 1, 512Mi, 2Gi


class KubernetesResources(Strict):
    """A container's `resources:`: requests and limits of cpu and memory."""

    requests: dict[Literal["cpu", "memory"], Annotated[str, Field(pattern=K8S_QUANTITY)]] = {}
    limits: dict[Literal["cpu", "memory"], Annotated[str, Field(pattern=K8S_QUANTITY)]] = {}


class KubernetesAutoscale(Strict):
    """A HorizontalPodAutoscaler on cpu utilisation."""

    min: int = Field(2, ge=1, le=1000)
    max: int = Field(10, ge=1, le=1000)
    cpu: int = Field(70, ge=1, le=100, description="target average cpu utilisation, percent")

    @model_validator(mode="after")
    def _order(self) -> KubernetesAutoscale:
        if self.max < self.min:
            raise ValueError("`max` must be at least `min`")
        return self


class ConfigRepository(Strict):
    """A separate git repository Argo CD or Flux watches: the manifests are pushed there."""

    url: str = Field(min_length=1, max_length=500)
    branch: str = Field("main", pattern=r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,199}$")
    path: str | None = Field(None, pattern=r"^[A-Za-z0-9_][A-Za-z0-9._/-]{0,199}$")

    @field_validator("url")
    @classmethod
    def _no_credentials(cls, v: str) -> str:
        """A URL with a password or token in it would land in logs: refused."""
        import re

        if re.match(r"^[a-z][a-z0-9+.-]*://[^/@]*:[^/@]*@", v):
            raise ValueError(
                "credentials in the URL: give them to git instead (MLOPS_GIT_TOKEN, a "
                "credential helper, an SSH key)"
            )
        if v.startswith("-"):
            raise ValueError("a URL cannot start with '-'")
        return v

    @field_validator("path")
    @classmethod
    def _inside(cls, v: str | None) -> str | None:
        if v is not None and (".." in v.split("/") or v.startswith("/")):
            raise ValueError("a path inside the repository (no '..', not absolute)")
        return v.rstrip("/") if v else v


class KubernetesSpec(Strict):
    """`kubernetes:` of an environment: what `mlops manifests` renders under deploy/k8s/ENV/."""

    namespace: str = Field(pattern=K8S_NAME)
    image: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._/:@-]{0,254}$")
    replicas: int = Field(2, ge=0, le=1000)
    resources: KubernetesResources | None = None
    autoscale: KubernetesAutoscale | None = None
    workers: int = Field(1, ge=1, le=64)
    port: int = Field(8080, ge=1024, le=65535)
    secret: str | None = Field(None, pattern=K8S_NAME, description="Secret with credentials")
    target: str | None = Field(None, description="the storage URL pods serve from")
    service_type: Literal["ClusterIP", "NodePort", "LoadBalancer"] = "ClusterIP"
    config_repo: ConfigRepository | None = None


class Environment(Strict):
    """A deployment environment: tracks the latest good version, or is pinned by a file."""

    track: Literal["latest"] | None = None
    pin: str | None = None
    target: str | None = None
    promotion: Literal["merge_request", "tag"] | None = None
    url: str | None = None
    kubernetes: KubernetesSpec | None = None

    @field_validator("target")
    @classmethod
    def _target_url(cls, v: str | None) -> str | None:
        """A local directory, or an object-store URL whose filesystem package is installed."""
        if v is None:
            return v
        from mlops.deploy.storage import missing_package, parse_target
        from mlops.errors import MlopsError

        try:
            url = parse_target(v, where="target")
            problem = missing_package(url, where="target")
        except MlopsError as exc:
            raise ValueError(f"{exc.message}. {exc.hint or ''}".strip()) from None
        if problem is not None:
            raise ValueError(f"{problem.message}. {problem.hint}")
        return v

    @model_validator(mode="after")
    def _track_or_pin(self) -> Environment:
        if (self.track is None) == (self.pin is None):
            raise ValueError("an environment needs exactly one of `track: latest` or `pin: FILE`")
        return self


class DriftSpec(Strict):
    """How drift is tested (`mlops.data.drift`): the method per column, thresholds, the share
    of drifted columns that is dataset drift, and the false-alarm level `alpha` held across all
    the tests of one check by `correction` (Holm by default; `none`: per column only)."""

    method: Literal["auto", "psi", "jensenshannon", "wasserstein", "ks", "chisquare"] = "auto"
    threshold: float | None = Field(None, gt=0)
    share: float = Field(0.5, gt=0, le=1)
    columns: dict[str, float] = Field(default_factory=dict)
    # the chance of any false alarm across all drift tests of one check (family-wise, Holm)
    alpha: float = Field(0.05, gt=0, lt=1)
    correction: Literal["holm", "bonferroni", "bh", "none"] = "holm"


class ValidateDriftSpec(DriftSpec):
    """Drift settings of a validate stage: how to compare, and what drift means for the run.

    `on_drift`: `continue` records it; `retrain` records it and asks for a new model (the run
    goes on to train; a standalone `mlops validate` exits 7); `stop` fails the stage (exit 3).
    """

    on_drift: Literal["continue", "retrain", "stop"] = "continue"


class AnomalySpec(Strict):
    """Anomalies that stop a run besides the schema: too few rows, or a jump against the
    previous span (row count, share of missing or infinite values in a column)."""

    min_rows: int = Field(1, ge=0)
    max_row_change: float | None = Field(None, gt=0)  # relative, e.g. 0.5 = +-50%
    max_missing_increase: float | None = Field(0.1, ge=0, le=1)  # absolute share, per column


class PerformanceSpec(Strict):
    """Online performance (labelled traffic) against bounds and the bundle's offline figure.

    `min`/`max` bound the online value (`max` for error metrics such as rmse); `max_drop` bounds
    how far it may fall behind the offline value (in the metric's bad direction). Checks need
    `min_labels` labelled rows; `confidence` is the level of the reported intervals and of the
    live-against-previous-version comparison that decides a rollback.
    """

    metric: str = "accuracy"
    min: float | None = None
    max_drop: float | None = Field(None, ge=0)
    max: float | None = None
    min_labels: int = Field(30, ge=1)
    confidence: float = Field(0.95, gt=0, lt=1)


class QualitySpec(Strict):
    """Data quality of live inputs: the share of requests refused (bad JSON, out of schema)."""

    max_rejected: float = Field(0.05, ge=0, le=1)


class HealthSpec(Strict):
    """Service health from the log: share of requests answered with a server error, latency."""

    max_error_rate: float = Field(0.01, ge=0, le=1)
    max_latency_p99_ms: float | None = Field(None, gt=0)


class RetrainSpec(Strict):
    """What `on_breach: retrain` does: the newest data span, then register and deploy.

    `span`: how the ingest stage's `span:` moves to the newest data of its source: `widen`
    (keep `from`, move `to`), `slide` (move both, same width) or `keep` (rerun as is: the source
    itself has new rows). `stage` names the ingest stage (default: the one with a span).
    `deploy`: the environment a retrained version that passes its gates is deployed to.
    """

    span: Literal["widen", "slide", "keep"] = "widen"
    stage: str | None = None
    deploy: str | None = "staging"


class GitLabIssueSpec(Strict):
    """`monitoring.notify.gitlab_issue:` open a GitLab issue per breach episode, close it when
    the breach resolves (CI_API_V4_URL, CI_PROJECT_ID and MLOPS_GITLAB_TOKEN from the job)."""

    enabled: bool = True
    labels: list[str] = Field(default_factory=lambda: ["mlops", "monitoring"])


NotifyEvent = Literal["breach", "resolved", "deploy_failed", "rollback"]
NOTIFY_EVENTS_DEFAULT: tuple[NotifyEvent, ...] = ("breach", "resolved", "deploy_failed", "rollback")


class NotifySpec(Strict):
    """`monitoring.notify:` where alerts go: apprise URLs (Slack, Teams, email, Matrix,
    webhooks, ...) whose secrets come from the environment (`${SLACK_URL}` inside a URL, or
    `env:SLACK_URL` for the whole URL), and/or a GitLab issue. One message per breach episode,
    one when it resolves; deploy failures and rollbacks too (`on:` chooses)."""

    urls: list[str] = Field(default_factory=list)
    gitlab_issue: GitLabIssueSpec | bool = False
    on: list[NotifyEvent] = Field(default_factory=lambda: list(NOTIFY_EVENTS_DEFAULT))

    @field_validator("urls")
    @classmethod
    def _urls(cls, v: list[str]) -> list[str]:
        import re

        for url in v:
            if url.startswith("env:"):
                if not re.fullmatch(r"env:[A-Za-z_][A-Za-z0-9_]*", url):
                    raise ValueError("`env:NAME` names an environment variable (letters, _)")
            elif "://" not in url and not re.search(r"\$\{[A-Za-z_][A-Za-z0-9_]*\}", url):
                raise ValueError(
                    "a notification URL looks like scheme://... (apprise's forms), "
                    "${NAME} inside it, or env:NAME for a URL kept in a variable"
                )
            elif re.search(r"://[^/@${}]*:[^/@${}]+@", url):
                raise ValueError(
                    "a password written in pipeline.yaml: put it in an environment variable "
                    "and write ${NAME} (or env:NAME) instead"
                )
        return v


class MonitoringSpec(Strict):
    drift: DriftSpec = Field(default_factory=DriftSpec)
    performance: PerformanceSpec = Field(default_factory=PerformanceSpec)
    on_breach: Literal["alert", "retrain", "rollback"] = "alert"
    window: str | None = None
    min_rows: int = Field(30, ge=1)  # fewer live rows than this: drift is not judged
    prediction_drift: bool = True  # drift of the outputs is a breach (not only reported)
    quality: QualitySpec = Field(default_factory=QualitySpec)
    health: HealthSpec = Field(default_factory=HealthSpec)
    retrain: RetrainSpec = Field(default_factory=RetrainSpec)
    notify: NotifySpec = Field(default_factory=NotifySpec)

    @field_validator("window")
    @classmethod
    def _window(cls, v: str | None) -> str | None:
        if v is not None:
            from mlops.config.durations import parse_duration

            parse_duration(v)  # raises ValueError with the accepted forms
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


# ---- `with:` of each built-in stage ---------------------------------------------------------


SpanBound = datetime | date | int | float | str | None


class SpanSpec(Strict):
    """Rows whose `column` lies in [from, to] (inclusive): a time range of the source.

    `from`/`to` are YAML dates (`2012-01-01`), datetimes (`2012-01-01 06:00:00`), numbers or
    text. With a date, a datetime, or `format`, the column is parsed as time (with `format`, a
    `pandas.to_datetime` format such as `%d/%m/%Y`; a cell that does not parse is an error)
    and compared as time; a date `to` includes that whole day. Numbers compare as numbers.
    """

    column: str
    from_: SpanBound = Field(None, alias="from")
    to: SpanBound = None
    format: str | None = None

    @property
    def is_time(self) -> bool:
        """Whether the bounds (or `format`) make this a time range."""
        return self.format is not None or any(isinstance(v, date) for v in (self.from_, self.to))


class IngestWith(Strict):
    source: str
    output: str = "data/raw/data.csv"
    span: SpanSpec | None = None
    columns: list[str] | None = None


class ValidateWith(Strict):
    input: str = "data/raw/data.csv"
    schema_: str = Field("data/schema.yaml", alias="schema")
    report: str = "reports/validation.json"
    profile: str = "reports/profile.json"  # this span's statistics (a DVC output)
    drift: ValidateDriftSpec = Field(default_factory=ValidateDriftSpec)  # vs the previous span
    anomalies: AnomalySpec = Field(default_factory=AnomalySpec)


class SplitWith(Strict):
    input: str = "data/raw/data.csv"
    output: str = "data/split"


class IncrementalSpec(Strict):
    """Train over the data's chunks (or the cluster's partitions) with `partial_fit`.

    The preprocessing learns from a sample of `sample_rows` rows (the categories from every
    row); the estimator then sees each chunk `epochs` times, in order.
    """

    epochs: int = Field(5, ge=1)
    sample_rows: int = Field(100_000, ge=10)


class TrainWith(Strict):
    input: str = "data/split/train.parquet"
    exclude: list[str] = Field(default_factory=list)  # columns not used as features
    # identifier and time columns (mlops.data.roles) are left out unless named here
    keep: list[str] = Field(default_factory=list)
    incremental: IncrementalSpec | None = None  # `{}` or `{epochs: 3}`: partial_fit over chunks

    @field_validator("incremental", mode="before")
    @classmethod
    def _switch(cls, v: Any) -> Any:
        if v is True:
            return {}
        return None if v is False else v


class EvaluateWith(Strict):
    input: str = "data/split/test.parquet"
    metrics: str = "reports/metrics.json"
    report: str = "reports/evaluation.md"  # Markdown: metrics, gates, slices, tuning
    html: str = "reports/evaluation.html"  # the same for people, with the plots inline
    plots: str = "reports/plots"  # data files `dvc plots show` renders
    baseline: str = "reports/baseline.json"  # written by mlops before each run (not_worse_than)


WITH_MODELS: dict[str, type[Strict]] = {
    "ingest": IngestWith,
    "validate": ValidateWith,
    "split": SplitWith,
    "train": TrainWith,
    "evaluate": EvaluateWith,
}

DEFAULT_PARAMS: dict[str, list[str]] = {"split": ["split"], "train": ["train"]}


# ---- params.yaml -------------------------------------------------------------------------


class SplitParams(Strict):
    test_size: float = Field(0.25, gt=0, lt=1)
    seed: int = 42
    stratify: bool = True


CLASS_PATH_PATTERN = r"^[A-Za-z_][\w.]*(\.|:)[A-Za-z_]\w*$"  # module.Class or module:Class


class FeatureStep(Strict):
    """One of the project's transformers in `train.features`, with its parameters."""

    class_: Annotated[str, Field(pattern=CLASS_PATH_PATTERN, alias="class")]
    params: dict[str, Any] = Field(default_factory=dict)


class TrainParams(BaseModel):
    """`train:` in params.yaml: `estimator` (a class path) and its hyper-parameters.

    `features` and `preprocess` are reserved keys (never hyper-parameters): the project's own
    transformers applied first, and whether the built-in preprocessing follows them."""

    model_config = ConfigDict(extra="allow")

    estimator: Annotated[str, Field(pattern=CLASS_PATH_PATTERN)]
    features: list[Annotated[str, Field(pattern=CLASS_PATH_PATTERN)] | FeatureStep] = Field(
        default_factory=list
    )
    preprocess: bool = True

    @property
    def hyperparameters(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class TuneParams(Strict):
    """`tune:` in params.yaml: a hyper-parameter search with cross-validation in the train stage.

    `space` maps hyper-parameters of the estimator (or `preprocess__...` steps) to a list of
    values, or for `random`/`halving` to a distribution `{loguniform: [lo, hi]}`,
    `{uniform: [lo, hi]}` or `{randint: [lo, hi]}`. The best values are fitted on the whole
    training set and recorded with the search table.
    """

    method: Literal["grid", "random", "halving"] = "grid"
    space: dict[str, Any]
    cv: int = Field(5, ge=2)
    scoring: str | None = None  # a scikit-learn scorer name; default accuracy / r2
    n_iter: int = Field(10, ge=1)  # random search: candidates drawn
    factor: int = Field(3, ge=2)  # successive halving: the reduction factor
    seed: int = 42
    n_jobs: int = 1  # local engine: parallel fits (-1: every core); dask: the whole cluster

    @field_validator("space")
    @classmethod
    def _space(cls, v: dict[str, Any]) -> dict[str, Any]:
        if not v:
            raise ValueError("the search space is empty")
        for key, values in v.items():
            if isinstance(values, list):
                if not values:
                    raise ValueError(f"{key}: no values to try")
            elif isinstance(values, dict):
                if len(values) != 1 or next(iter(values)) not in DISTRIBUTIONS:
                    raise ValueError(
                        f"{key}: a distribution is one of {', '.join(DISTRIBUTIONS)}: [lo, hi]"
                    )
                bounds = next(iter(values.values()))
                if not (isinstance(bounds, list) and len(bounds) == 2):
                    raise ValueError(f"{key}: a distribution needs [lo, hi]")
            else:
                raise ValueError(f"{key}: give a list of values or a distribution")
        return v


DISTRIBUTIONS = ("loguniform", "uniform", "randint")


class Params(BaseModel):
    """`params.yaml`: known sections are checked; any other section is free for custom stages."""

    model_config = ConfigDict(extra="allow")

    split: SplitParams = Field(default_factory=SplitParams)
    train: TrainParams | None = None
    tune: TuneParams | None = None


# ---- deploy/<env>.yaml -------------------------------------------------------------------


class DeployPin(Strict):
    """`deploy/<env>.yaml`: the model version a pinned environment should run.

    Changed through merge requests (`mlops promote NAME VERSION --to ENV`).
    """

    model: Annotated[str, Field(pattern=NAME_PATTERN, max_length=100)]
    version: str

    @field_validator("version")
    @classmethod
    def _semver(cls, v: str) -> str:
        if not SemVer.valid(v):
            raise ValueError("must be a registered version like v1.2.0 (vMAJOR.MINOR.PATCH)")
        return v

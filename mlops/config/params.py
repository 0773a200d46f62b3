"""`with:` of each built-in stage, `params.yaml`, and `deploy/<env>.yaml` (a pinned version)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from mlops.config.base import NAME_PATTERN, Strict
from mlops.config.monitoring import AnomalySpec, ValidateDriftSpec
from mlops.config.versions import SemVer

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

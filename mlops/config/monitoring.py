"""`monitoring:` of pipeline.yaml: drift, performance, quality and health checks, what a breach
does, and where alerts go.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from mlops.config.base import Strict


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

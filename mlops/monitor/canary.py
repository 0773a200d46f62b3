"""Judging a canary or shadow release: the candidate against live, on the same window.

The window is the current step (since the record's `step_started`); both sides are read from
the same prediction log (local JSON log or shipped segments, `mlops.monitor.commands.read_log`).
For a canary the two sides are the requests each version answered; for a shadow they are the
same requests, live's answers against the shadow's (`endpoint: "shadow"` entries).

The comparisons (one family, Holm's correction at `canary.alpha`, each one-sided "the candidate
is worse" except drift, which is two-sided):

- **errors** (canary only): share of 5xx answers, Fisher's exact test; and an absolute breach
  when the Wilson interval's lower bound of the canary's 5xx share exceeds `max_error_rate`;
- **latency** (canary only): Mann-Whitney U on request latencies, counted as worse only when
  the canary's p99 is also at least `max_latency_ratio` times live's p99 (an effect floor);
- **metric**: the online metric of `monitoring.performance` on rows with feedback labels, a
  z-test on the difference (both sides need `min_labels` labelled rows);
- **prediction drift**: predicted classes as a 2 x k contingency table
  (`mlops.data.calibration.contingency_p`), predicted values by the two-sample KS test.

Decision (`canary.abort_on`, default errors, latency, metric): **abort** on any breach; else
**promote** once both sides answered `min_requests` requests in the step; else **wait**.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from statistics import NormalDist
from typing import TYPE_CHECKING, Any

from mlops.data.calibration import adjust, contingency_p
from mlops.errors import GitStateError

if TYPE_CHECKING:
    import numpy as np

    from mlops.config.models import CanarySpec
    from mlops.monitor.logdata import LogColumns


@dataclass
class Finding:
    """One comparison of the candidate with live."""

    name: str  # errors | latency | metric | prediction_drift
    live: float | None
    candidate: float | None
    p: float | None = None  # one-sided (worse) or two-sided (drift); None: not judged
    p_adjusted: float | None = None
    worse: bool = False
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in asdict(self).items()}


@dataclass
class CanaryReport:
    """The candidate against live in the current step, and what to do."""

    env: str
    mode: str
    live: str
    candidate: str
    percent: float
    since: float
    requests: dict[str, int]
    findings: list[Finding] = field(default_factory=list)
    breaches: list[str] = field(default_factory=list)
    decision: str = "wait"  # abort | promote | wait
    reason: str = ""
    agreement: float | None = None  # shadow: share of rows where both predicted the same
    action: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["findings"] = [f.to_dict() for f in self.findings]
        return out


def _np(col: Any) -> np.ndarray:
    import numpy as np

    return np.asarray(col.to_numpy(zero_copy_only=False))


def _side_masks(pred: Any, live: str, candidate: str, mode: str, since: float) -> tuple:
    import numpy as np

    if not pred.num_rows:
        empty = np.zeros(0, bool)
        return empty, empty, empty
    ts = _np(pred.column("ts"))
    version = np.asarray(pred.column("version").to_pylist(), dtype=object)
    endpoint = np.asarray(pred.column("endpoint").to_pylist(), dtype=object)
    shadow = endpoint == "shadow"
    in_win = ts >= since
    live_m = in_win & (version == live) & ~shadow
    cand_m = in_win & (version == candidate) & (shadow if mode == "shadow" else ~shadow)
    first = _np(pred.column("row")) == 0
    return live_m, cand_m, first


def _p99(x: np.ndarray) -> float | None:
    import numpy as np

    return float(np.quantile(x, 0.99)) if len(x) else None


def _errors(err: Any, live: str, cand: str, since: float, n_live: int, n_cand: int) -> tuple:
    import numpy as np

    if not err.num_rows:
        return 0, 0
    ts = _np(err.column("ts"))
    status = _np(err.column("status"))
    version = np.asarray(err.column("version").to_pylist(), dtype=object)
    bad = (ts >= since) & (status >= 500)
    return int((bad & (version == live)).sum()), int((bad & (version == cand)).sum())


def _labels(fb: Any) -> dict[tuple[str, int], Any]:
    if not fb.num_rows:
        return {}
    rid = fb.column("request_id").to_pylist()
    row = fb.column("row").to_pylist()
    label = fb.column("label").to_pylist()
    return dict(zip(zip(rid, row, strict=True), label, strict=True))


def compare(
    columns: LogColumns,
    *,
    env: str,
    record: dict[str, Any],
    live: str,
    spec: CanarySpec,
    metric: str = "accuracy",
    min_labels: int = 30,
    task: str | None = None,
) -> CanaryReport:
    """The candidate of `record` against `live` over the log since the step started."""
    import numpy as np
    from scipy.stats import fisher_exact, ks_2samp, mannwhitneyu

    from mlops.stats import classification_estimate, regression_estimate, wilson

    mode, cand = record["mode"], record["version"]
    since = float(record.get("step_started") or 0.0)
    pred = columns.predictions
    live_m, cand_m, first = _side_masks(pred, live, cand, mode, since)
    n_live, n_cand = int((live_m & first).sum()), int((cand_m & first).sum())
    report = CanaryReport(env, mode, live, cand, float(record["percent"]), since,
                          {"live": n_live, "candidate": n_cand})  # fmt: skip
    preds = pred.column("prediction").to_pylist() if pred.num_rows else []
    p_live = [preds[i] for i in np.flatnonzero(live_m)]
    p_cand = [preds[i] for i in np.flatnonzero(cand_m)]
    findings: list[Finding] = []
    if mode == "canary":
        e_live, e_cand = _errors(columns.errors, live, cand, since, n_live, n_cand)
        t_live, t_cand = n_live + e_live, n_cand + e_cand
        r_live = e_live / t_live if t_live else None
        r_cand = e_cand / t_cand if t_cand else None
        f = Finding("errors", r_live, r_cand, detail=f"{e_cand}/{t_cand} vs {e_live}/{t_live} 5xx")
        if t_live and t_cand and (e_live or e_cand):
            f.p = float(fisher_exact([[e_cand, t_cand - e_cand], [e_live, t_live - e_live]],
                                     alternative="greater")[1])  # fmt: skip
        elif t_live and t_cand:
            f.p = 1.0
        findings.append(f)
        if t_cand:
            low, _ = wilson(e_cand, t_cand, 1 - spec.alpha)
            if low > spec.max_error_rate:
                report.breaches.append(
                    f"errors: the canary's 5xx share {e_cand}/{t_cand} is above "
                    f"max_error_rate {spec.max_error_rate:g} (lower bound {low:.4f})"
                )
        lat = _np(pred.column("latency_ms")) if pred.num_rows else np.zeros(0)
        l_live = lat[live_m & first]
        l_cand = lat[cand_m & first]
        l_live, l_cand = l_live[np.isfinite(l_live)], l_cand[np.isfinite(l_cand)]
        f = Finding("latency", _p99(l_live), _p99(l_cand), detail="p99 ms")
        if len(l_live) >= 20 and len(l_cand) >= 20:
            f.p = float(mannwhitneyu(l_cand, l_live, alternative="greater").pvalue)
        findings.append(f)
    labels = _labels(columns.feedback)
    if labels and pred.num_rows:
        rid = pred.column("request_id").to_pylist()
        row = pred.column("row").to_pylist()
        sides = []
        for mask in (live_m, cand_m):
            pairs = [(labels.get((rid[i], row[i])), preds[i]) for i in np.flatnonzero(mask)]
            sides.append([(y, p) for y, p in pairs if y is not None])
        f = Finding("metric", None, None, detail=f"{metric} on labelled rows")
        if min(len(sides[0]), len(sides[1])) >= min_labels:
            if task == "regression":
                est = [regression_estimate(np.array([y for y, _ in s], float),
                                           np.array([p for _, p in s], float), metric, 0.95)
                       for s in sides]  # fmt: skip
            else:
                classes = sorted({str(v) for s in sides for pair in s for v in pair})
                code = {c: i for i, c in enumerate(classes)}
                est = [classification_estimate(np.array([code[str(y)] for y, _ in s]),
                                               np.array([code[str(p)] for _, p in s]),
                                               len(classes), metric, 0.95)
                       for s in sides]  # fmt: skip
            f.live, f.candidate = est[0].value, est[1].value
            if None not in (est[0].value, est[1].value, est[0].se, est[1].se):
                from mlops.stats import LOWER_IS_BETTER

                sign = -1.0 if metric in LOWER_IS_BETTER else 1.0
                shortfall = sign * (est[0].value - est[1].value)  # type: ignore[operator]
                se = math.sqrt(est[0].se ** 2 + est[1].se ** 2)  # type: ignore[operator]
                z = shortfall / se if se > 0 else (math.inf if shortfall > 0 else -math.inf)
                f.p = 1 - NormalDist().cdf(z) if math.isfinite(z) else (0.0 if z > 0 else 1.0)
            f.detail += f" ({len(sides[0])} live, {len(sides[1])} candidate)"
        else:
            f.detail += f": too few ({len(sides[0])} live, {len(sides[1])} candidate; need "
            f.detail += f"{min_labels} each)"
        findings.append(f)
    if mode == "shadow" and pred.num_rows:  # the same requests: how often both agree
        rid = pred.column("request_id").to_pylist()
        row = pred.column("row").to_pylist()
        by_key = {(rid[i], row[i]): preds[i] for i in np.flatnonzero(live_m)}
        both = [(by_key.get((rid[i], row[i])), preds[i]) for i in np.flatnonzero(cand_m)]
        both = [(a, b) for a, b in both if a is not None]
        report.agreement = sum(a == b for a, b in both) / len(both) if both else None
    f = Finding("prediction_drift", None, None)
    if p_live and p_cand:
        numeric = task == "regression" or all(
            isinstance(v, int | float) and not isinstance(v, bool) for v in p_live[:100]
        )
        if numeric and task != "classification":
            f.p = float(ks_2samp(np.asarray(p_cand, float), np.asarray(p_live, float)).pvalue)
            f.detail = "two-sample KS on predicted values"
        else:
            cats = sorted({str(v) for v in p_live} | {str(v) for v in p_cand})
            a = [sum(1 for v in p_live if str(v) == c) for c in cats]
            b = [sum(1 for v in p_cand if str(v) == c) for c in cats]
            f.p = contingency_p(a, b)
            f.live = None
            f.detail = "predicted classes, 2 x k contingency table: " + ", ".join(
                f"{c} {x}/{y}" for c, x, y in zip(cats, a, b, strict=True)
            )
    findings.append(f)
    judged = [f for f in findings if f.p is not None]
    for f, adj in zip(judged, adjust([f.p for f in judged], "holm"), strict=True):  # type: ignore[misc]
        f.p_adjusted = adj
        f.worse = adj < spec.alpha
        if f.name == "latency" and f.worse and f.live and f.candidate is not None:
            f.worse = f.candidate >= spec.max_latency_ratio * f.live
    report.findings = findings
    for f in findings:
        if f.worse and f.name in spec.abort_on:
            report.breaches.append(
                f"{f.name}: the {mode} does measurably worse than live (p = {f.p_adjusted:.2g} "
                f"after Holm's correction; {f.detail})"
            )
    report.breaches = [b for b in report.breaches if b.split(":", 1)[0] in spec.abort_on]
    if report.breaches:
        report.decision, report.reason = "abort", "; ".join(report.breaches)
    elif n_live >= spec.min_requests and n_cand >= spec.min_requests:
        report.decision = "promote"
        report.reason = (
            f"{n_cand} {mode} and {n_live} live requests in this step (minimum "
            f"{spec.min_requests}) and nothing worse than live"
        )
    else:
        report.reason = (
            f"waiting for evidence: {n_cand} {mode} and {n_live} live requests in this step "
            f"(minimum {spec.min_requests} each)"
        )
    return report


def check_release(
    root: Path | str,
    env: str,
    *,
    act: bool = False,
    log_dir: Path | str | None = None,
    push: bool | None = None,
    remote: str = "origin",
) -> CanaryReport:
    """Compare the release in progress in `env` with live; with `act`, abort or promote one
    step as the report decides (the CI job that steps a rollout on a schedule)."""
    from mlops.config import load_project
    from mlops.deploy import canary
    from mlops.deploy.deployer import target_of
    from mlops.monitor.commands import read_log

    project = load_project(root)
    target = target_of(project, env)
    record = canary.read_record(target)
    if record is None:
        raise GitStateError(
            f"no canary or shadow release is in progress in {env}",
            f"Start one: mlops deploy --env {env} --canary 10",
        )
    live = target.current_version() or ""
    columns = read_log(target, log_dir, None)
    perf = project.pipeline.monitoring.performance
    task = project.pipeline.model.task
    report = compare(
        columns,
        env=env,
        record=record,
        live=live,
        spec=project.pipeline.canary,
        metric=perf.metric,
        min_labels=perf.min_labels,
        task=None if task == "auto" else task,
    )
    report.notes += list(columns.notes)
    if act and report.decision == "abort":
        done = canary.abort(root, env, reason=report.reason, push=push, remote=remote)
        report.action = done.to_dict()
    elif act and report.decision == "promote":
        report.action = canary.promote(root, env, push=push, remote=remote).to_dict()
    return report

"""Online performance: feedback labels joined to the predictions they answer, the metric with
its interval per version, and the comparison with the version that ran before."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mlops.monitor.arrays import _categorical, _is_numeric, _np, _recode
from mlops.stats import (
    CLASSIFICATION,
    LOWER_IS_BETTER,
    REGRESSION,
    Comparison,
    Estimate,
    classification_estimate,
    compare_estimates,
    regression_estimate,
)

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

    from mlops.config.models import MonitoringSpec
    from mlops.monitor.arrays import _Frame
    from mlops.monitor.checks import LiveModel, MonitorReport


def _metric_name(live: LiveModel, wanted: str, notes: list[str]) -> str:
    supported = CLASSIFICATION if live.task == "classification" else REGRESSION
    if wanted in supported:
        return wanted
    fallback = supported[0]
    notes.append(
        f"performance.metric {wanted!r} cannot be computed from labels alone for a "
        f"{live.task} model; using {fallback} (online metrics: {', '.join(supported)})"
    )
    return fallback


def _labelled(pred: pa.Table, fb: pa.Table) -> tuple[np.ndarray, pa.Array | None]:
    """For each prediction row, the index of its label in the returned labels (-1: none); the
    latest feedback for a (request id, row) wins."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    n = pred.num_rows
    out = np.full(n, -1, dtype=np.int64)
    if not fb.num_rows or not n:
        return out, None
    order = np.argsort(_np(fb.column("ts")), kind="stable")
    fb = fb.select(["request_id", "row", "label"])
    if (order[1:] < order[:-1]).any():  # not already in time order
        fb = fb.take(pa.array(order))
    one_row = (
        not pc.any(pc.not_equal(fb.column("row"), 0)).as_py()
        and not pc.any(pc.not_equal(pred.column("row"), 0)).as_py()
    )
    if one_row:  # one-row requests: the request id is the key
        fkeys = fb.column("request_id").combine_chunks()
    else:
        fkeys = pc.binary_join_element_wise(
            fb.column("request_id"), fb.column("row").cast(pa.string()), "\x1f"
        ).combine_chunks()
    labels = fb.column("label").combine_chunks()
    # latest first: `index_in` gives the first occurrence of a key in its value set, so a key
    # labelled twice finds its last label (no separate pass to drop the earlier ones)
    latest_first = pa.array(np.arange(len(fkeys) - 1, -1, -1, dtype=np.int64))
    fkeys, labels = fkeys.take(latest_first), labels.take(latest_first)
    if one_row:  # one hash look-up per prediction
        found = pc.index_in(pred.column("request_id"), value_set=fkeys)
        out[:] = np.asarray(pc.fill_null(found, -1).to_numpy(zero_copy_only=False))
        return out, labels
    ids = pc.unique(fb.column("request_id"))
    candidate = pc.is_in(pred.column("request_id"), value_set=ids)  # cheaper than index_in
    rows = np.flatnonzero(np.asarray(pc.fill_null(candidate, False)))
    if not len(rows):
        return out, labels
    sub = pred.select(["request_id", "row"]).take(pa.array(rows))
    pkeys = pc.binary_join_element_wise(
        sub.column("request_id"), sub.column("row").cast(pa.string()), "\x1f"
    )
    found = pc.index_in(pkeys, value_set=fkeys)
    out[rows] = np.asarray(pc.fill_null(found, -1).to_numpy(zero_copy_only=False))
    return out, labels


@dataclass
class _Scored:
    """Per prediction row: whether it is labelled, and codes (classes) or values (regression)."""

    labelled: np.ndarray  # bool
    y: np.ndarray  # label codes or values (meaningful where labelled)
    p: np.ndarray
    classes: list[str]


def _score_rows(pred: pa.Table, fb: pa.Table, live: LiveModel) -> _Scored:
    import numpy as np
    import pyarrow as pa

    idx, labels = _labelled(pred, fb)
    labelled = idx >= 0
    if live.task == "classification":
        pcodes, pvalues = _categorical(pred.column("prediction"))
        classes = [str(c) for c in live.classes]
        known = set(classes)
        classes += sorted({v for v in pvalues if v is not None and v not in known})
        y = np.full(pred.num_rows, -1, dtype=np.int64)
        if labels is not None and labelled.any():
            lcodes, lvalues = _categorical(labels)
            known = set(classes)
            classes += sorted({v for v in lvalues if v is not None and v not in known})
            y[labelled] = _recode(lcodes, lvalues, classes)[idx[labelled]]
        p = _recode(pcodes, pvalues, classes)
        labelled &= (y >= 0) & (p >= 0)
        return _Scored(labelled, y, p, classes)
    if not _is_numeric(pred.column("prediction")):
        return _Scored(np.zeros(pred.num_rows, bool), np.zeros(0), np.zeros(0), [])
    p = _np(pred.column("prediction"))
    y = np.full(pred.num_rows, math.nan)
    if labels is not None and labelled.any() and _is_numeric(labels):
        y[labelled] = _np(labels.take(pa.array(idx[labelled])))
    labelled &= ~np.isnan(y) & ~np.isnan(p)
    return _Scored(labelled, y, p, [])


def _estimate(s: _Scored, mask: np.ndarray, live: LiveModel, metric: str, conf: float) -> Estimate:
    rows = mask & s.labelled
    if live.task == "classification":
        return classification_estimate(s.y[rows], s.p[rows], len(s.classes), metric, conf)
    return regression_estimate(s.y[rows], s.p[rows], metric, conf)


def _performance(
    report: MonitorReport,
    live: LiveModel,
    spec: MonitoringSpec,
    scored: _Scored | None,
    f: _Frame,
    live_rows: np.ndarray | None,
    feedback_rows: int,
    estimates: Any = None,
) -> None:
    """The performance section. `estimates` (`mlops.monitor.assemble`, None when there is no
    feedback or the rows are used) answers from merged confusion counts instead of `scored`
    rows: `estimate(None, …)` the live version in the window, `estimate(v, …)` version `v` over
    the whole log (as the masks below)."""
    notes: list[str] = []
    metric = _metric_name(live, spec.performance.metric, notes)
    report.notes.extend(notes)
    conf = spec.performance.confidence
    offline = live.metrics.get(metric)
    perf: dict[str, Any] = {
        "metric": metric,
        "offline": offline,
        "min": spec.performance.min,
        "max": spec.performance.max,
        "max_drop": spec.performance.max_drop,
        "min_labels": spec.performance.min_labels,
        "confidence": conf,
        "lower_is_better": metric in LOWER_IS_BETTER,
        "feedback_rows": feedback_rows,
    }
    live_est = Estimate(metric, None, None, None, 0, conf, note="no labelled rows")
    by_version: dict[str, Any] = {}
    comparison: Comparison | None = None
    if estimates is not None:
        live_est = estimates.estimate(None, metric, conf)
        for v in estimates.versions:
            if v is None or v == live.version:
                continue
            if estimates.has_labels(v):
                by_version[v] = estimates.estimate(v, metric, conf).to_dict()
        previous = report.previous
        if previous is not None and previous != live.version:
            prev_est = estimates.estimate(previous, metric, conf)
            comparison = compare_estimates(
                live_est, prev_est, previous, spec.performance.min_labels, conf
            )
    elif scored is not None and live_rows is not None:
        live_est = _estimate(scored, live_rows, live, metric, conf)
        for code, v in enumerate(f.version_values):
            if v is None or v == live.version:
                continue
            mask = f.version_codes == code
            if (mask & scored.labelled).any():
                by_version[v] = _estimate(scored, mask, live, metric, conf).to_dict()
        previous = report.previous
        if previous is not None and previous != live.version:
            prev_est = _estimate(scored, f.version_mask(previous), live, metric, conf)
            comparison = compare_estimates(
                live_est, prev_est, previous, spec.performance.min_labels, conf
            )
    perf["online"] = live_est.to_dict()
    perf["by_version"] = by_version
    if offline is not None and live_est.value is not None:
        sign = -1.0 if metric in LOWER_IS_BETTER else 1.0
        perf["drop"] = round(sign * (float(offline) - live_est.value), 6)
    perf["judged"] = live_est.labelled >= spec.performance.min_labels
    perf["previous"] = comparison.to_dict() if comparison else None
    report.performance = perf

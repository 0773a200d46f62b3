"""`evaluate`: score the fitted pipeline on the test set, apply the gates, package the bundle.

Writes the metrics file `dvc metrics show` reads, and the model bundle `models/<name>/` with the
verdict (blessed or not, with every gate's figures) in its metadata. A failed gate does not fail the
stage: the bundle is recorded as unblessed, and `mlops run` exits 4 with the gate table.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

from mlops.bundle import MODEL_FILE, load_model_file, write_bundle
from mlops.config.models import EvaluateWith, GateSpec
from mlops.config.yamlfile import atomic_write_text
from mlops.data.io import md5_file, read_table
from mlops.errors import UsageError
from mlops.pipeline.facts import write_facts

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from mlops.config import Project, ResolvedStage

LOWER_IS_BETTER = {"rmse", "mae", "log_loss", "mse"}


def classification_metrics(
    y: pd.Series, pred: np.ndarray, proba: Any, classes: list, log_loss: bool = False
) -> dict:
    """Metrics of predicted labels, `roc_auc` with probabilities, and `log_loss` when asked
    (a gate names it; left out otherwise so that existing reports keep their bytes)."""
    from sklearn import metrics as m

    out = {
        "accuracy": m.accuracy_score(y, pred),
        "balanced_accuracy": m.balanced_accuracy_score(y, pred),
        "f1_macro": m.f1_score(y, pred, average="macro", zero_division=0),
        "precision_macro": m.precision_score(y, pred, average="macro", zero_division=0),
        "recall_macro": m.recall_score(y, pred, average="macro", zero_division=0),
    }
    present = set(y.unique())
    if proba is not None and len(present) >= 2 and present <= set(classes):
        if len(classes) == 2:
            out["roc_auc"] = m.roc_auc_score(y, proba[:, 1])
        else:
            out["roc_auc"] = m.roc_auc_score(
                y, proba, multi_class="ovr", average="macro", labels=classes
            )
    if log_loss and proba is not None and set(y.unique()) <= set(classes):
        out["log_loss"] = m.log_loss(y, proba, labels=classes)
    return {k: round(float(v), 6) for k, v in out.items()}


def regression_metrics(y: pd.Series, pred: np.ndarray) -> dict:
    from sklearn import metrics as m

    return {
        "rmse": round(float(m.mean_squared_error(y, pred) ** 0.5), 6),
        "mae": round(float(m.mean_absolute_error(y, pred)), 6),
        "r2": round(float(m.r2_score(y, pred)), 6),
    }


def _baseline_label(entry: dict[str, Any]) -> str:
    commit = (entry.get("commit") or "")[:8]
    return f"{entry.get('name')} @ {commit}" if commit else str(entry.get("name"))


def check_gates(
    gates: dict[str, GateSpec],
    metrics: dict[str, float],
    baselines: dict[str, dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """One result per rule: {metric, rule, threshold, value, passed, margin, note, ...}.

    `baselines` maps a baseline name (`not_worse_than:` value: a git branch or an environment)
    to what `mlops.pipeline.baseline` found there: `{"metrics": {...} or None, "note": ...}`.
    A comparison gate passes when the value is within `tolerance` (absolute, or relative to
    the baseline's value) of the baseline in the metric's direction; with no baseline yet (the
    first run) it passes and says so. Where the entry holds `paired` figures (the baseline's
    bundle scored on the same test rows, `mlops.stages.paired`), the gate judges the paired
    difference instead: it fails only when the difference's whole confidence interval lies
    below `-tolerance`.
    """
    results = []
    for metric, gate in gates.items():
        value = metrics.get(metric)
        rules: list[tuple[str, float | None]] = []
        if gate.min is not None:
            rules.append(("min", gate.min))
        if gate.max is not None:
            rules.append(("max", gate.max))
        if gate.not_worse_than is not None:
            rules.append((f"not_worse_than {gate.not_worse_than}", None))
        for rule, threshold in rules:
            res: dict[str, Any] = {
                "metric": metric,
                "rule": rule,
                "threshold": threshold,
                "value": value,
                "passed": False,
                "margin": None,
                "note": "",
            }
            if value is None:
                res["note"] = f"metric not computed; available: {', '.join(sorted(metrics))}"
            elif rule == "min":
                res["margin"] = round(value - threshold, 6)
                res["passed"] = value >= threshold
            elif rule == "max":
                res["margin"] = round(threshold - value, 6)
                res["passed"] = value <= threshold
            else:
                name = gate.not_worse_than
                entry = (baselines or {}).get(name or "") or {}
                base = (entry.get("metrics") or {}).get(metric)
                res["tolerance"] = gate.tolerance
                res["relative"] = gate.relative
                if (entry.get("paired") or {}).get(metric):
                    # the baseline's bundle scored here: its figure need not have been stored
                    _paired_rule(res, entry, metric, value, gate)
                elif base is None:
                    res["passed"] = True
                    why = entry.get("note") or f"no baseline in {name} yet"
                    if entry.get("metrics") is not None:
                        why = f"{name} has no {metric}"
                    res["note"] = f"{why}: passes (first run)"
                else:
                    lower = gate.direction == "lower" or (
                        gate.direction is None and metric in LOWER_IS_BETTER
                    )
                    tol = gate.tolerance * (abs(base) if gate.relative else 1.0)
                    res["baseline"] = base
                    res["baseline_ref"] = _baseline_label(entry)
                    res["threshold"] = round(base + tol if lower else base - tol, 6)
                    res["margin"] = round(
                        (res["threshold"] - value) if lower else (value - res["threshold"]), 6
                    )
                    res["passed"] = res["margin"] >= 0
                    sign = "+" if lower else "-"
                    res["note"] = (
                        f"{'lower' if lower else 'higher'} is better: {value:.4g} against "
                        f"{base:.4g} in {_baseline_label(entry)} {sign} {tol:.4g}"
                    )
                    if entry.get("paired_note"):
                        res["note"] += f"; stored figures, {entry['paired_note']}"
            results.append(res)
    return results


def _lower(metric: str, gate: GateSpec) -> bool:
    return gate.direction == "lower" or (gate.direction is None and metric in LOWER_IS_BETTER)


def _paired_rule(
    res: dict[str, Any], entry: dict[str, Any], metric: str, value: float, gate: GateSpec
) -> None:
    """A `not_worse_than` verdict on the paired difference (positive: the challenger better)."""
    p = entry["paired"][metric]
    base = float(p["baseline"])
    lower = _lower(metric, gate)
    tol = gate.tolerance * (abs(base) if gate.relative else 1.0)
    res["baseline"] = base
    res["baseline_ref"] = _baseline_label(entry)
    res["paired"] = p
    res["threshold"] = round(base + tol if lower else base - tol, 6)
    res["margin"] = round(p["high"] + tol, 6)  # how far the interval's top is above -tolerance
    res["passed"] = res["margin"] >= 0
    res["note"] = (
        f"paired on the same {p['rows']} test rows: {p['challenger']:.4g} against "
        f"{base:.4g} for {_baseline_label(entry)}, difference {p['difference']:+.4g} "
        f"[{p['low']:+.4g}, {p['high']:+.4g}] ({p['confidence']:.0%}, {p['method']}; "
        f"{'lower' if lower else 'higher'} is better); fails when the whole interval is "
        f"below -{tol:.4g}"
    )


def pair_baselines(
    project: Project,
    gates: dict[str, GateSpec],
    baselines: dict[str, dict[str, Any]],
    test: pd.DataFrame,
    y: pd.Series,
    pred: Any,
    task: str,
    proba: Any = None,
    classes: list | None = None,
) -> list[str]:
    """Score each baseline's bundle on the challenger's test rows and put the paired figures of
    every gated metric in its entry (`paired`), or why it could not (`paired_note`: the gate
    then uses the stored figures). Metrics of probabilities (`roc_auc`, `log_loss`) are paired
    on both models' `predict_proba` (`proba`: the challenger's, columns in `classes`' order).
    Returns lines for the stage's output."""
    from mlops.errors import MlopsError
    from mlops.stages.paired import align_proba, pairable, paired_difference, score_baseline

    lines = []
    for name, entry in baselines.items():
        metrics = [
            (m, g)
            for m, g in gates.items()
            if g.not_worse_than == name and pairable(m, task, probabilities=True)
        ]
        if not metrics or not entry.get("commit"):
            continue
        try:
            base_pred, base_proba, meta = score_baseline(project, entry, test)
        except MlopsError as exc:
            entry["paired_note"] = f"the baseline bundle could not score this split: {exc.message}"
            lines.append(f"baseline {name}: {entry['paired_note']}")
            continue
        paired, unpaired = {}, []
        for m, g in metrics:
            lower = _lower(m, g)
            if pairable(m, task):
                paired[m] = paired_difference(m, task, y, pred, base_pred, lower_is_better=lower)
                continue
            if proba is None or base_proba is None or not meta.get("classes"):
                unpaired.append(m)
                continue
            try:
                base = align_proba(base_proba, list(meta["classes"]), list(classes or []))
                paired[m] = paired_difference(
                    m, task, y, proba, base, lower_is_better=lower, classes=list(classes or [])
                )
            except MlopsError:
                unpaired.append(m)
        entry["paired"] = paired
        if unpaired:
            entry["paired_note"] = (
                f"{', '.join(unpaired)} not paired: both models' probabilities of every "
                "test label are needed"
            )
            lines.append(f"baseline {name}: {entry['paired_note']}")
        lines.append(f"baseline {name}: its bundle scored on the same {len(test)} test rows")
    return lines


def read_baselines(project: Project, args: EvaluateWith, gates: dict[str, GateSpec]) -> dict:
    """The baselines `mlops run` resolved before this run (reports/baseline.json)."""
    if not any(g.not_worse_than for g in gates.values()):
        return {}
    path = project.path(args.baseline)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {
            g.not_worse_than: {
                "name": g.not_worse_than,
                "metrics": None,
                "note": f"{args.baseline} missing (run through `mlops run`)",
            }
            for g in gates.values()
            if g.not_worse_than
        }


def prediction_reference(pred: np.ndarray, proba: Any) -> dict[str, Any]:
    """The statistics profile of the test set's predictions (and top-class probabilities):
    monitoring compares live predictions with it (prediction drift)."""
    import pandas as pd

    from mlops.data.profile import profile_frame

    frame = pd.DataFrame({"prediction": list(pred)})
    if proba is not None:
        frame["confidence"] = proba.max(axis=1)
    return profile_frame(frame)


def _copy_curve(fit_dir: Any, plots_dir: Any) -> list[str]:
    """The train stage's per-iteration curve into the plots directory (when it wrote one)."""
    from mlops.stages.custom import CURVE_FILE

    src = fit_dir / CURVE_FILE
    if not src.is_file():
        return []
    atomic_write_text(plots_dir / CURVE_FILE, src.read_text())
    return [CURVE_FILE]


def run(project: Project, stage: ResolvedStage) -> list[str]:
    from mlops.reports.evaluation import render_markdown
    from mlops.reports.figures import render_html
    from mlops.stages import plotdata, slices

    args: EvaluateWith = stage.args
    spec = project.pipeline.model
    fit_dir = project.path(spec.fit_path)
    fit = json.loads((fit_dir / "fit.json").read_text())
    if (fit.get("code") or {}).get("modules"):  # the project's own classes: from its root
        from mlops.bundle.codepin import verify_code

        verify_code(fit["code"], project.root, fit_dir)
    model = load_model_file(fit_dir / MODEL_FILE, spec.trusted_types)
    test = read_table(project.path(args.input))
    if spec.target not in test.columns:
        raise UsageError(f"target column {spec.target!r} is not in {args.input}")
    test = test[test[spec.target].notna()].reset_index(drop=True)
    X, y = test[fit["features"]], test[spec.target]
    t0 = time.perf_counter()
    pred = model.predict(X)
    classes = list(fit["classes"])
    proba = None
    if fit["task"] == "classification":
        proba = model.predict_proba(X) if hasattr(model, "predict_proba") else None
        stage_config = project.pipeline.stages[stage.name]
        gated = {*stage_config.gates, *stage_config.slice_gates}
        metrics = classification_metrics(y, pred, proba, classes, "log_loss" in gated)

        def metric_fn(ys, ps, pr):
            # ROC AUC only where every class occurs (otherwise it is undefined)
            m = classification_metrics(
                ys,
                ps,
                pr if ys.nunique() == len(classes) else None,
                classes,
                "log_loss" in gated,
            )
            if len(classes) == 2:
                m["positive_rate"] = round(float((ps == classes[1]).mean()), 6)
            return m

        plots = plotdata.classification_plots(y, pred, proba, classes)
    else:
        metrics = regression_metrics(y, pred)

        def metric_fn(ys, ps, pr):
            return regression_metrics(ys, ps) if len(ys) > 1 else {}

        plots = plotdata.regression_plots(y, pred)
    metrics["test_rows"] = len(test)
    config = project.pipeline.stages[stage.name]
    specs = slices.slice_specs(config.slices, project.pipeline.data.sensitive)
    slice_table = slices.compute_slices(
        test, specs, project.pipeline.data.sensitive, y, pred, proba, metric_fn
    )
    predict_seconds = time.perf_counter() - t0
    baselines = read_baselines(project, args, config.gates)
    baseline_lines = pair_baselines(
        project, config.gates, baselines, test, y, pred, fit["task"], proba, classes
    )
    training = fit.get("training") or {}
    gated = dict(metrics)
    if "converged" in config.gates:  # `converged: true`: 1 when the fit raised no warning
        gated["converged"] = 1.0 if training.get("converged", True) else 0.0
    gates = check_gates(config.gates, gated, baselines)
    for g in gates:
        if g["metric"] == "converged" and g["rule"] == "min":
            g["rule"], g["threshold"] = "converged", True
            g["note"] = "; ".join(training.get("warnings") or []) or "no ConvergenceWarning"
    gates += [
        {**g, "slice_gate": True} for g in slices.check_slice_gates(config.slice_gates, slice_table)
    ]
    verdict = {"blessed": all(g["passed"] for g in gates), "gates": gates}

    files = {
        name: (fit_dir / name).read_bytes()
        for name in (MODEL_FILE, "schema.json", "reference.json")
    }
    files["metrics.json"] = (json.dumps(metrics, indent=2) + "\n").encode()
    plot_files = plotdata.write_plot_files(
        project.path(args.plots), fit["task"], plots, slice_table
    )
    plot_files += _copy_curve(fit_dir, project.path(args.plots))
    metadata = {
        "name": spec.name,
        "task": fit["task"],
        "target": spec.target,
        "features": fit["features"],
        "classes": fit["classes"],
        "estimator": fit["estimator"],
        "params": {"train": fit["hyperparameters"], "split": project.params.split.model_dump()},
        "data": {**fit["data"], args.input: md5_file(project.path(args.input))},
        "metrics": metrics,
        "verdict": verdict,
        "slices": slice_table,
        "tuning": fit.get("tuning"),
        "baselines": baselines,
        # no commit and no wall time: the same inputs give the same bytes (mlops.pipeline.facts)
        "versions": fit["versions"],
        "train_rows": fit["train_rows"],
        "prediction_reference": prediction_reference(pred, proba),
    }
    if fit.get("excluded_columns"):
        metadata["excluded_columns"] = fit["excluded_columns"]
    if fit.get("training"):
        metadata["training"] = fit["training"]
    if fit.get("code"):  # project modules + hash, package versions (mlops.bundle.codepin)
        metadata["code"] = fit["code"]
    write_bundle(project.path(spec.path), files, metadata)
    write_facts(project.root, stage.name, {"predict_seconds": round(predict_seconds, 4)})
    summary = {
        **metadata,
        "test_rows": len(test),
        "plots": {"dir": args.plots, "files": plot_files, "html": args.html},
    }
    atomic_write_text(project.path(args.report), render_markdown(summary))
    atomic_write_text(project.path(args.html), render_html(summary, plots))
    atomic_write_text(project.path(args.metrics), json.dumps(metrics, indent=2) + "\n")
    shown = ", ".join(f"{k}={v:.4g}" for k, v in metrics.items() if k != "test_rows")
    lines = [f"evaluate: {shown} on {len(test)} test rows ({predict_seconds:.2f}s)"]
    lines.append(f"slices: {len(slice_table)} groups over {len(specs)} slice specs")
    lines.extend(baseline_lines)
    for g in gates:
        lines.append(
            f"gate {g['metric']} {g['rule']} {g['threshold']}: "
            f"{'pass' if g['passed'] else 'FAIL'} (value {g['value']}) {g['note']}".rstrip()
        )
    lines.append(f"bundle: {spec.path} ({'blessed' if verdict['blessed'] else 'NOT blessed'})")
    lines.append(f"report: {args.report}, {args.html}; plot data: {args.plots}/")
    return lines

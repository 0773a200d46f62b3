"""The evaluation report in Markdown: verdict, metrics, gates (with baselines), slices, tuning.

`render_markdown(evaluation)` takes the evaluation summary the evaluate stage builds (the same
dict it stores in the bundle's metadata) and returns text for a merge-request comment or a file.
The output is deterministic (no timestamps), so an unchanged model gives an unchanged report.
"""

from __future__ import annotations

from typing import Any

MAX_TUNING_ROWS = 10


def fmt(v: Any) -> str:
    """A value for a table cell: 4 significant digits for floats, `-` for nothing."""
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v).replace("|", "\\|")


def signed(v: float | None) -> str:
    return "-" if v is None else f"{v:+.4g}"


def table(header: list[str], rows: list[list[Any]]) -> list[str]:
    """A Markdown table (cells escaped and formatted)."""
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += [
        "| " + " | ".join(fmt(c) if not isinstance(c, str) else c for c in r) + " |" for r in rows
    ]
    return out


def gate_rows(gates: list[dict[str, Any]]) -> list[list[Any]]:
    """Gate table rows: metric, rule, value, baseline, tolerance, threshold, margin, result."""
    rows = []
    for g in gates:
        baseline = g.get("baseline")
        base = "-" if baseline is None else fmt(baseline)
        if baseline is not None and g.get("baseline_ref"):
            base += f" ({g['baseline_ref']})"
        tol = g.get("tolerance")
        tol_text = "-" if tol is None else fmt(tol) + (" (relative)" if g.get("relative") else "")
        rows.append(
            [
                fmt(g["metric"]),
                fmt(g["rule"]),
                fmt(g.get("value")),
                base,
                tol_text,
                fmt(g.get("threshold")),
                signed(g.get("margin")),
                ("pass" if g["passed"] else "**FAIL**")
                + (f" - {fmt(g['note'])}" if g.get("note") else ""),
            ]
        )
    return rows


def _slice_section(slices: list[dict[str, Any]]) -> list[str]:
    out: list[str] = []
    specs: dict[str, list[dict[str, Any]]] = {}
    for s in slices:
        specs.setdefault(s["spec"], []).append(s)
    for spec, entries in specs.items():
        metrics: list[str] = []
        for e in entries:
            metrics += [m for m in e["metrics"] if m not in metrics]
        sensitive = " (sensitive)" if entries[0].get("sensitive") else ""
        out += ["", f"### {spec}{sensitive}", ""]
        header = [*entries[0]["columns"], "rows", "share", *metrics]
        rows = [
            [*map(fmt, e["values"]), str(e["rows"]), f"{e['share']:.1%}"]
            + [fmt(e["metrics"].get(m)) for m in metrics]
            for e in entries
        ]
        out += table(header, rows)
        for m in metrics[:1]:
            vals = [e["metrics"][m] for e in entries if e["metrics"].get(m) is not None]
            if len(vals) > 1:
                out += ["", f"Gap between best and worst {m}: {max(vals) - min(vals):.4g}."]
    return out


def _tuning_section(tuning: dict[str, Any]) -> list[str]:
    out = [
        "",
        "## Tuning",
        "",
        f"{tuning['method']} search, {tuning['cv']}-fold cross-validation, scoring "
        f"`{tuning['scoring']}`: {tuning['candidates']} candidates"
        + (f" in {tuning['iterations']} rounds" if tuning.get("iterations") else "")
        + (f", {tuning['seconds']:.1f}s." if tuning.get("seconds") is not None else "."),
        "",
        "Best: "
        + ", ".join(f"`{k}={v!r}`" for k, v in tuning["best_params"].items())
        + f" (mean CV score {tuning['best_score']:.4g}).",
        "",
    ]
    keys = list(tuning["best_params"])
    header = ["rank", *keys, "mean score", "std"]
    extra = "n_resources" in (tuning["table"][0] if tuning["table"] else {})
    if extra:
        header.insert(1, "resources")
    rows = []
    for r in tuning["table"][:MAX_TUNING_ROWS]:
        values = [r["params"].get(k) for k in keys]
        row = [str(r["rank"]), *("None" if v is None else fmt(v) for v in values)]
        row += [fmt(r["mean_score"]), fmt(r["std_score"])]
        if extra:
            row.insert(1, fmt(r.get("n_resources")))
        rows.append(row)
    out += table(header, rows)
    if len(tuning["table"]) > MAX_TUNING_ROWS:
        out.append(f"\n({len(tuning['table'])} rows in the run record: `mlops runs show --json`.)")
    return out


def render_markdown(ev: dict[str, Any]) -> str:
    """The whole report as Markdown."""
    verdict = ev.get("verdict", {})
    gates = verdict.get("gates", [])
    failed = [g for g in gates if not g["passed"]]
    head = (
        "blessed"
        if verdict.get("blessed")
        else f"NOT blessed ({len(failed)} gate{'s' if len(failed) != 1 else ''} failed)"
    )
    out = [
        f"# Evaluation of {ev['name']}",
        "",
        f"**Verdict: {head}**",
        "",
        f"{ev['task']} of `{ev['target']}` with `{ev['estimator']}`, "
        f"{ev['train_rows']} training rows, {ev['test_rows']} test rows"
        + (f", code at {ev['commit'][:10]}" if ev.get("commit") else "")
        + ".",
        "",
        "## Metrics",
        "",
    ]
    metrics = {k: v for k, v in ev["metrics"].items() if k != "test_rows"}
    out += table(["metric", "value"], [[k, fmt(v)] for k, v in metrics.items()])
    out += ["", "## Quality gates", ""]
    overall = [g for g in gates if not g.get("slice_gate")]
    if overall:
        out += table(
            ["metric", "rule", "value", "baseline", "tolerance", "threshold", "margin", "result"],
            gate_rows(overall),
        )
    else:
        out.append("No gates configured (`gates:` of the evaluate stage in pipeline.yaml).")
    slice_gates = [g for g in gates if g.get("slice_gate")]
    if slice_gates:
        out += ["", "Slice gates:", ""]
        out += table(
            ["metric", "rule", "value", "threshold", "margin", "result"],
            [[r[0], r[1], r[2], r[5], r[6], r[7]] for r in gate_rows(slice_gates)],
        )
    if ev.get("slices"):
        out += ["", "## Slices", ""]
        out.append(
            "Metrics per slice of the test set; sensitive columns (`data.sensitive`) are "
            "always included."
        )
        out += _slice_section(ev["slices"])
    if ev.get("tuning"):
        out += _tuning_section(ev["tuning"])
    plots = ev.get("plots") or {}
    if plots.get("files"):
        out += [
            "",
            "## Plots",
            "",
            f"Data in `{plots['dir']}/` (`dvc plots show` renders it; `dvc plots diff main` "
            f"compares with another revision); drawn in `{plots['html']}`.",
        ]
    return "\n".join(out) + "\n"

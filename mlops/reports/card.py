"""The model card: `reports/model-card.md` and `reports/model-card.html`.

Written after every run that evaluated a model, committed with the run's results
(`mlops commit`). People's words come from `model.card:` in pipeline.yaml (intended use, out of
scope, limitations, owners, ethical considerations, references); the rest from the run: the data
(sources, rows, sensitive columns, hashes), metrics, slices, quality gates and lineage (params,
data and bundle hashes). Same inputs, same bytes: no timestamps, no run ids, no commit ids (the
commit that holds the card is its lineage; `mlops lineage NAME@vX.Y.Z` prints where it is).
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from mlops.config.yamlfile import atomic_write_text

CARD_MD = "reports/model-card.md"
CARD_HTML = "reports/model-card.html"
SECTIONS = (
    "Model details",
    "Intended use",
    "Limitations",
    "Owners",
    "Data",
    "Metrics",
    "Slices",
    "Quality gates",
    "Ethical considerations",
    "Lineage",
)
_MISSING = "_Not stated: add it under `model.card:` in pipeline.yaml._"


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v).replace("|", "\\|")


def _json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(data, dict):
        return {prefix: data}
    out: dict[str, Any] = {}
    for k, v in data.items():
        out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
    return out


def build_card(project: Any, record: Any) -> dict[str, list[str]]:
    """Each section's Markdown lines, in `SECTIONS` order."""
    pipe = project.pipeline
    model = pipe.model
    card = model.card
    root = project.root
    meta = _json(root / model.path / "metadata.json") or {}
    s: dict[str, list[str]] = {}
    s["Model details"] = [
        f"- Name: `{model.name}`",
        f"- Task: {meta.get('task') or model.task}; label column `{model.target}`",
        f"- Estimator: `{_fmt(meta.get('estimator') or (record.params.get('train') or {}).get('estimator', '-'))}`",  # noqa: E501
        *([f"- Description: {model.description}"] if model.description else []),
    ]
    s["Intended use"] = [card.intended_use or _MISSING]
    if card.out_of_scope:
        s["Intended use"] += ["", f"Out of scope: {card.out_of_scope}"]
    s["Limitations"] = [f"- {x}" for x in card.limitations] or [_MISSING]
    s["Owners"] = [f"- {x}" for x in card.owners] or [_MISSING]
    data = ["| source | stage |", "|---|---|"]
    for name, st in pipe.stages.items():
        if st.uses == "ingest":
            span = (st.with_ or {}).get("span")
            data.append(f"| `{(st.with_ or {}).get('source')}` | {name}"
                        + (f", span {_fmt(span)}" if span else "") + " |")  # fmt: skip
    validation = _json(root / "reports/validation.json") or {}
    if isinstance(validation, dict) and validation.get("rows") is not None:
        data += ["", f"Rows validated: {validation.get('rows')}; valid: {validation.get('valid')}"]
    if pipe.data.sensitive:
        data += ["", f"Sensitive columns: {', '.join(f'`{c}`' for c in pipe.data.sensitive)}"]
    s["Data"] = data
    metrics = _flatten(record.metrics or {})
    s["Metrics"] = ["| metric | value |", "|---|---|"] + [
        f"| {k} | {_fmt(v)} |" for k, v in sorted(metrics.items())
    ]
    slices = record.extra.get("slices") or meta.get("slices") or []
    rows = ["| slice | rows | metrics |", "|---|---|---|"]
    for e in slices if isinstance(slices, list) else []:
        if isinstance(e, dict):
            shown = ", ".join(f"{k}={_fmt(v)}" for k, v in (e.get("metrics") or {}).items())
            rows.append(f"| {_fmt(e.get('name'))} | {_fmt(e.get('rows'))} | {shown} |")
    s["Slices"] = rows if len(rows) > 2 else ["_No slices configured (`slices:` of evaluate)._"]
    gates = ["| metric | rule | threshold | value | passed |", "|---|---|---|---|---|"]
    verdicts = record.verdict or {}
    for verdict in verdicts.values() if isinstance(verdicts, dict) else []:
        for g in (verdict or {}).get("gates", []) if isinstance(verdict, dict) else []:
            gates.append(
                f"| {_fmt(g.get('metric'))}{' in ' + _fmt(g['slice']) if g.get('slice') else ''}"
                f" | {_fmt(g.get('rule'))} | {_fmt(g.get('threshold'))} | {_fmt(g.get('value'))}"
                f" | {'yes' if g.get('passed') else '**no**'} |"
            )
    s["Quality gates"] = gates if len(gates) > 2 else ["_No quality gates._"]
    s["Ethical considerations"] = [card.ethical_considerations or _MISSING]
    lineage = ["| what | hash / value |", "|---|---|"]
    for path, digest in sorted({**(record.deps or {}), **(record.outs or {})}.items()):
        lineage.append(f"| `{path}` | `{digest}` |")
    for k, v in sorted(_flatten(record.params or {}).items()):
        lineage.append(f"| param `{k}` | {_fmt(v)} |")
    lineage += [
        "",
        f"The registered version and the commit that holds this card: `mlops lineage "
        f"{model.name}@vX.Y.Z` (or `mlops registry show`).",
    ]
    if card.references:
        lineage += ["", "References:", *[f"- {r}" for r in card.references]]
    s["Lineage"] = lineage
    return s


def render_markdown(name: str, sections: dict[str, list[str]]) -> str:
    out = [f"# Model card: {name}", ""]
    for title in SECTIONS:
        out += [f"## {title}", "", *sections.get(title, [_MISSING]), ""]
    return "\n".join(out).rstrip() + "\n"


def render_html(name: str, sections: dict[str, list[str]]) -> str:
    """A standalone page (escaped; tables as tables, other lines as paragraphs)."""
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>Model card: {html.escape(name)}</title>",
        "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.2em .5em}</style>",
        f"</head><body><h1>Model card: {html.escape(name)}</h1>",
    ]
    for title in SECTIONS:
        parts.append(f"<h2>{html.escape(title)}</h2>")
        table: list[list[str]] = []
        for line in [*sections.get(title, []), ""]:
            if line.startswith("|"):
                cells = [c.strip() for c in line.strip("|").split(" | ")]
                if not all(set(c) <= {"-"} for c in cells):
                    table.append(cells)
                continue
            if table:
                head, *body = table
                parts.append("<table><tr>" + "".join(f"<th>{html.escape(c)}</th>" for c in head))
                for row in body:
                    parts.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row))
                parts.append("</table>")
                table = []
            if line:
                parts.append(f"<p>{html.escape(line)}</p>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def write_card(project: Any, record: Any) -> Path:
    """Write `reports/model-card.md` and `.html` (atomically); the Markdown file's path."""
    sections = build_card(project, record)
    name = project.pipeline.model.name
    md: Path = project.root / CARD_MD
    md.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(md, render_markdown(name, sections))
    atomic_write_text(project.root / CARD_HTML, render_html(name, sections))
    return md

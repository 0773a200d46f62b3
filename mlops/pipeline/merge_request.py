"""The merge-request report (`mlops report`): this branch's model against production and the
default branch, in Markdown for a GitLab note.

Sections: the gate verdict; metrics of this work tree against each baseline (like
`dvc metrics diff --md`); params that differ; data validation and drift; the quality gates; the
confusion matrix (classification) and a link to the plots; the whole evaluation report, folded.
Baselines resolve like the gates' `not_worse_than:` (`mlops.pipeline.baseline`): an environment
of pipeline.yaml is the version the registry has there, anything else a git ref (falling back to
`origin/<branch>` in CI clones). Everything is read from files the pipeline wrote and from git;
nothing is recomputed.
"""

from __future__ import annotations

import csv
import json
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlops.adapters import git
from mlops.config import PARAMS_FILE, Project, limits, load_project
from mlops.errors import ConfigError
from mlops.pipeline.baseline import resolve_baseline
from mlops.pipeline.compare import flatten
from mlops.registry.state import read_registry
from mlops.reports.evaluation import fmt, gate_rows, signed, table

MAX_PARAM_ROWS = 40
MAX_CONFUSION_CLASSES = 12


@dataclass
class Baseline:
    """One column of the comparison: an environment's version or a git ref."""

    name: str
    kind: str  # "environment" | "branch"
    label: str  # column header, e.g. "production (v0.0.3)" or "main (5f7dce90)"
    commit: str | None
    version: str | None
    metrics: dict[str, float] | None
    params: dict[str, Any] | None
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class MergeRequestReport:
    """The report's content (`to_dict`) and its Markdown (`markdown`)."""

    name: str
    branch: str | None
    commit: str | None
    metrics: dict[str, float] = field(default_factory=dict)
    baselines: list[Baseline] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)
    verdict: dict[str, Any] | None = None
    validation: dict[str, Any] | None = None
    plots: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    markdown: str = ""
    posted: dict[str, Any] | None = None

    @property
    def blessed(self) -> bool | None:
        return None if self.verdict is None else bool(self.verdict.get("blessed"))

    def to_dict(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        out["baselines"] = [b.to_dict() for b in self.baselines]
        out["blessed"] = self.blessed
        return out


# ---- reading ------------------------------------------------------------------------------


def _numbers(data: Any) -> dict[str, float]:
    if not isinstance(data, dict):
        return {}
    return {
        k: v
        for k, v in data.items()
        if isinstance(v, int | float) and not isinstance(v, bool) and k != "test_rows"
    }


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _params_text(text: str | None) -> dict[str, Any] | None:
    if text is None:
        return None
    try:
        return flatten(limits.safe_load(text, "params.yaml") or {})
    except ConfigError:  # invalid, or over the limits (an alias bomb): params unknown
        return None


def _stage_args(project: Project, kind: str) -> Any:
    for st in project.stages.values():
        if st.kind == kind:
            return st.args
    return None


def default_branch() -> str:
    """The default branch: GitLab's `CI_DEFAULT_BRANCH`, else `main`."""
    return os.environ.get("CI_DEFAULT_BRANCH") or "main"


def default_baselines(project: Project) -> list[str]:
    """`production` (when pipeline.yaml has it) and the default branch."""
    out = [e for e in ("production",) if e in project.pipeline.environments]
    return [*out, default_branch()]


def _baseline(project: Project, name: str, metrics_path: str) -> Baseline:
    entry = resolve_baseline(project, name, metrics_path)
    commit = entry.get("commit")
    version = None
    if entry.get("kind") == "environment":
        art = read_registry(project.root).get(project.pipeline.model.name)
        holder = art.in_stage(name) if art else None
        version = holder.version if holder else None
        label = f"{name} ({version})" if version else name
    else:
        label = f"{name} ({commit[:8]})" if commit else name
    params = _params_text(git.show_file(project.root, commit, PARAMS_FILE)) if commit else None
    return Baseline(
        name=name,
        kind=str(entry.get("kind")),
        label=label,
        commit=commit,
        version=version,
        metrics=_numbers(entry["metrics"]) if entry.get("metrics") is not None else None,
        params=params,
        note=entry.get("note") or "",
    )


def build_report(
    root: Path | str = ".", vs: list[str] | None = None, *, job_url: str | None = None
) -> MergeRequestReport:
    """Collect everything the report shows and render its Markdown."""
    project = load_project(root)
    root = project.root
    name = project.pipeline.model.name
    branch = (
        os.environ.get("CI_MERGE_REQUEST_SOURCE_BRANCH_NAME")
        or os.environ.get("CI_COMMIT_REF_NAME")
        or git.branch(root)
    )
    rep = MergeRequestReport(name, branch, git.head(root))
    ev = _stage_args(project, "evaluate")
    metrics_path = ev.metrics if ev is not None else "reports/metrics.json"
    data = _read_json(root / metrics_path)
    rep.metrics = _numbers(data)
    if data is None:
        rep.notes.append(f"no {metrics_path} in the work tree: run the pipeline first")
    for b in vs or default_baselines(project):
        rep.baselines.append(_baseline(project, b, metrics_path))
    rep.params = _params_text(_read_text(root / PARAMS_FILE)) or {}
    meta = _read_json(root / project.pipeline.model.path / "metadata.json")
    if isinstance(meta, dict):
        rep.verdict = meta.get("verdict") or None
    val = _stage_args(project, "validate")
    if val is not None:
        report = _read_json(root / val.report)
        rep.validation = report if isinstance(report, dict) else None
    if ev is not None:
        rep.plots = _plots(root, ev, job_url or os.environ.get("CI_JOB_URL"))
        rep.plots["evaluation_md"] = ev.report
    rep.markdown = render(rep, root)
    return rep


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except OSError:
        return None


def _plots(root: Path, ev: Any, job_url: str | None) -> dict[str, Any]:
    out: dict[str, Any] = {"dir": ev.plots, "html": ev.html}
    html = root / ev.html
    if html.is_file():
        out["html_url"] = f"{job_url.rstrip('/')}/artifacts/file/{ev.html}" if job_url else None
    out["files"] = sorted(
        str(p.relative_to(root)) for p in (root / ev.plots).rglob("*") if p.is_file()
    )
    confusion = root / ev.plots / "confusion.csv"
    if confusion.is_file():
        out["confusion"] = _confusion(confusion)
    return out


def _confusion(path: Path) -> dict[str, Any] | None:
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            pairs = Counter((r["actual"], r["predicted"]) for r in csv.DictReader(fh))
    except (OSError, KeyError, csv.Error):
        return None
    labels = sorted({a for a, _ in pairs} | {p for _, p in pairs})
    if not labels or len(labels) > MAX_CONFUSION_CLASSES:
        return None
    return {"labels": labels, "counts": [[pairs[(a, p)] for p in labels] for a in labels]}


# ---- Markdown -------------------------------------------------------------------------------


def _esc(text: Any) -> str:
    return str(text).replace("|", "\\|")


def _metrics_section(rep: MergeRequestReport) -> list[str]:
    out = ["### Metrics", ""]
    keys = list(dict.fromkeys([*rep.metrics, *(k for b in rep.baselines for k in b.metrics or {})]))
    if not keys:
        return [*out, "No metrics: the pipeline has not produced any yet."]
    header = ["metric", *(_esc(b.label) for b in rep.baselines), "this branch"]
    header += [f"change vs {_esc(b.name)}" for b in rep.baselines]
    rows = []
    for k in keys:
        this = rep.metrics.get(k)
        base = [(b.metrics or {}).get(k) for b in rep.baselines]
        deltas = [signed(this - v) if this is not None and v is not None else "-" for v in base]
        rows.append([k, *(fmt(v) for v in base), f"**{fmt(this)}**", *deltas])
    out += table(header, rows)
    notes = [f"{b.label}: {b.note}" for b in rep.baselines if b.note]
    if notes:
        out += ["", *(f"- {_esc(n)}" for n in notes)]
    return out


def _params_section(rep: MergeRequestReport) -> list[str]:
    out = ["### Params", ""]
    known = [b for b in rep.baselines if b.params is not None]
    keys = list(dict.fromkeys([*rep.params, *(k for b in known for k in b.params or {})]))
    changed = [
        k for k in keys if any((b.params or {}).get(k, None) != rep.params.get(k) for b in known)
    ]
    if not known:
        return [*out, "No baseline to compare params with."]
    if not changed:
        return [*out, f"No params changed against {', '.join(b.name for b in known)}."]
    rows = []
    for k in changed[:MAX_PARAM_ROWS]:
        rows.append([k, *(_cell(b.params, k) for b in known), f"**{_cell(rep.params, k)}**"])
    out += table(["param", *(_esc(b.label) for b in known), "this branch"], rows)
    if len(changed) > MAX_PARAM_ROWS:
        out.append(f"\n({len(changed) - MAX_PARAM_ROWS} more changed params not shown.)")
    return out


def _cell(params: dict[str, Any] | None, key: str) -> str:
    if params is None or key not in params:
        return "-"
    value = params[key]
    return _esc(fmt(value) if not isinstance(value, list | dict) else json.dumps(value))


def _drift_line(label: str, d: dict[str, Any] | None) -> str | None:
    if not d:
        return None
    drifted = d.get("drifted") or []
    n = len(d.get("columns") or []) or None
    what = f"{len(drifted)} of {n} columns" if n else f"{len(drifted)} columns"
    verdict = "**dataset drift**" if d.get("dataset_drift") else "no dataset drift"
    share = d.get("share_threshold")
    tail = f" (threshold: {share:.0%} of columns)" if isinstance(share, int | float) else ""
    cols = f": {', '.join(map(str, drifted[:8]))}" if drifted else ""
    return f"- drift against {label}: {verdict}, {what} drifted{cols}{tail}"


def _data_section(rep: MergeRequestReport) -> list[str]:
    out = ["### Data", ""]
    v = rep.validation
    if v is None:
        return [*out, "No data validation report (the pipeline has no `validate` stage yet)."]
    failures = v.get("failures") or []
    size = f"{v.get('rows', '?')} rows x {v.get('columns', '?')} columns"
    if v.get("valid", not failures):
        out.append(f"- validation: **passed**: {size} of `{v.get('input')}` match "
                   f"`{v.get('schema')}`")  # fmt: skip
    else:
        out.append(f"- validation: **FAILED**: {len(failures)} failed checks in {size}")
        rows = [
            [_esc(f.get("column")), _esc(f.get("check")), fmt(f.get("failing", f.get("count")))]
            for f in failures[:15]
        ]
        out += ["", *table(["column", "check", "failing values"], rows), ""]
    drift = v.get("drift") or {}
    lines = [
        _drift_line("the previous data", drift.get("previous")),
        _drift_line("the training data", drift.get("reference")),
    ]
    measured = [ln for ln in lines if ln]
    out += measured or ["- drift: not measured (no earlier data to compare with)"]
    return out


def _gates_section(rep: MergeRequestReport) -> list[str]:
    out = ["### Quality gates", ""]
    if rep.verdict is None:
        return [*out, "No verdict: the evaluate stage did not run (see the pipeline's log)."]
    gates = rep.verdict.get("gates") or []
    if not gates:
        return [*out, "No gates configured (`gates:` of the evaluate stage in pipeline.yaml)."]
    rows = gate_rows(gates)
    return out + table(
        ["metric", "rule", "value", "baseline", "threshold", "result"],
        [[r[0], r[1] + (" (slice)" if g.get("slice_gate") else ""), r[2], r[3], r[5], r[7]]
         for r, g in zip(rows, gates, strict=True)],
    )  # fmt: skip


def _plots_section(rep: MergeRequestReport) -> list[str]:
    p = rep.plots
    if not p:
        return []
    out = ["### Plots", ""]
    c = p.get("confusion")
    if c:
        out.append("Confusion matrix of the test set (rows: actual, columns: predicted):")
        out.append("")
        out += table(
            ["actual \\ predicted", *map(_esc, c["labels"])],
            [[_esc(a), *map(str, row)] for a, row in zip(c["labels"], c["counts"], strict=True)],
        )
        out.append("")
    if p.get("html_url"):
        out.append(f"All plots: [{p['html']}]({p['html_url']}) (job artifact).")
    else:
        out.append(f"All plots: `{p['html']}`; data in `{p['dir']}/` (`dvc plots diff main`).")
    return out


def _folded_evaluation(root: Path, path: str | None) -> list[str]:
    text = _read_text(root / path) if path else None
    if not text:
        return []
    demoted = re.sub(r"^(#{1,4}) ", lambda m: "#" * min(len(m.group(1)) + 2, 6) + " ", text,
                     flags=re.M)  # fmt: skip
    return ["<details><summary>Full evaluation report</summary>", "", demoted.strip(), "",
            "</details>"]  # fmt: skip


def _card_link(root: Path) -> list[str]:
    """A link to the model card (the CI job's artifact when in CI), when the run wrote one."""
    import os

    from mlops.reports.card import CARD_HTML, CARD_MD

    if not (root / CARD_MD).is_file():
        return []
    job = os.environ.get("CI_JOB_URL", "")
    if job.startswith(("http://", "https://")):
        url = f"{job.rstrip('/')}/artifacts/file/{CARD_HTML}"
        return [f"Model card: [{CARD_MD}]({url}) (intended use, limitations, data, lineage)", ""]
    return [f"Model card: `{CARD_MD}` (intended use, limitations, data, lineage)", ""]


def render(rep: MergeRequestReport, root: Path) -> str:
    """The report as Markdown (deterministic: no timestamps)."""
    where = f" on `{rep.branch}`" if rep.branch else ""
    at = f" at {rep.commit[:8]}" if rep.commit else ""
    if rep.verdict is None:
        verdict = "no verdict (the pipeline did not evaluate a model)"
    elif rep.blessed:
        verdict = "**passed**: every quality gate holds"
    else:
        failed = [g for g in rep.verdict.get("gates") or [] if not g.get("passed")]
        names = ", ".join(f"{g.get('metric')} {g.get('rule')}" for g in failed)
        plural = "s" if len(failed) != 1 else ""
        verdict = f"**FAILED**: {len(failed)} quality gate{plural} failed ({names})"
    out = [f"## mlops report: {rep.name}{where}{at}", "", f"Gates: {verdict}", ""]
    v = rep.validation
    if v is not None and not v.get("valid", True):
        out += [
            "**Data validation FAILED**: the pipeline stopped before training; the model, "
            "metrics and gates below are those of the last complete run.",
            "",
        ]
    for section in (
        _metrics_section(rep),
        _params_section(rep),
        _data_section(rep),
        _gates_section(rep),
        _plots_section(rep),
    ):
        if section:
            out += [*section, ""]
    out += _card_link(root)
    for note in rep.notes:
        out.append(f"> {note}")
    out += _folded_evaluation(root, rep.plots.get("evaluation_md"))
    return "\n".join(out).rstrip() + "\n"


def post(rep: MergeRequestReport, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Create or update the merge request's one report note (GitLab's REST API).

    Uses CI_API_V4_URL, CI_PROJECT_ID, CI_MERGE_REQUEST_IID and the token in MLOPS_GITLAB_TOKEN;
    the token is never part of a message or of the result.
    """
    from mlops.adapters.gitlab import MergeRequestRef, upsert_note

    ref = MergeRequestRef.from_env(env)
    done = upsert_note(ref, rep.markdown)
    rep.posted = {**done, "project": ref.project_id, "merge_request": ref.mr_iid}
    return rep.posted

"""What a run produced, and its record: shared by the DVC path (`runner`) and the no-op path
(`quick`). Light on purpose: no pydantic models, no DVC, so a no-op run never loads them.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from mlops.errors import ConfigError, GateFailedError, MlopsError
from mlops.pipeline.facts import collect_facts
from mlops.pipeline.records import RunRecord, RunStore

LOG_ROOT = Path(".mlops/logs")
KEEP_LOGS = 30
FRESH = ("ran", "cached", "skipped")  # statuses whose outputs are current after the run

try:
    _Loader: type = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - libyaml missing
    _Loader = yaml.SafeLoader


@dataclass
class StageResult:
    name: str
    status: str  # ran | cached | skipped | failed | not run | would run
    seconds: float = 0.0
    log: str | None = None
    exit_status: int | None = None
    error: str | None = None
    tail: list[str] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)


@dataclass
class GateResult:
    stage: str
    metric: str
    rule: str
    threshold: float | None
    value: float | None
    passed: bool
    margin: float | None = None
    note: str = ""
    baseline: float | None = None  # not_worse_than: the baseline's value, where it came from
    baseline_ref: str | None = None
    tolerance: float | None = None
    relative: bool = False
    slice: str | None = None  # slice gates: the slice that decided the outcome
    slice_gate: bool = False


@dataclass
class RunResult:
    record: RunRecord
    stages: list[StageResult]
    gates: list[GateResult] = field(default_factory=list)
    fast: bool = False  # proved up to date without starting DVC
    compiled: bool = False  # dvc.yaml was (re)written
    error: MlopsError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_dict(self) -> dict[str, Any]:
        out = {
            "run_id": self.record.id,
            "outcome": self.record.outcome,
            "exit_code": self.record.exit_code,
            "fast_noop": self.fast,
            "stages": [asdict(s) for s in self.stages],
            "gates": [asdict(g) for g in self.gates],
            "metrics": self.record.metrics,
            "slices": self.record.extra.get("slices", []),
            "tuning": self.record.extra.get("tuning"),
            "git": {
                "commit": self.record.git_commit,
                "dirty": self.record.git_dirty,
                "branch": self.record.git_branch,
            },
            "started": self.record.started,
            "ended": self.record.ended,
        }
        if self.error is not None:
            out["error"] = self.error.to_dict()
        return out


@dataclass
class Layout:
    """What finishing a run needs to know about the pipeline, without loading pipeline.yaml:
    each stage's metrics files, the evaluate stages, and the model bundle's path."""

    metrics: dict[str, list[str]]
    evaluate: list[str]
    bundle: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def load_yaml_file(path: Path) -> Any:
    """YAML within `mlops.config.limits` (read-only files: dvc.lock, params, metrics); a file
    over the limits raises `ConfigError`."""
    from mlops.config import limits

    return limits.load_file(path)


def tail(path: str | Path | None, lines: int = 20) -> list[str]:
    if not path:
        return []
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    return [ln for ln in text.splitlines() if ln.strip()][-lines:]


def read_lock(root: Path) -> dict[str, Any]:
    path = root / "dvc.lock"
    try:
        data = load_yaml_file(path) or {}
    except (OSError, yaml.YAMLError, ConfigError):
        return {}
    return data.get("stages", {}) if isinstance(data, dict) else {}


def lock_hashes(lock: dict[str, Any], stages: list[str], key: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for name in stages:
        for item in lock.get(name, {}).get(key, []) or []:
            digest = item.get("md5") or item.get("hash") or item.get("etag")
            if item.get("path") and digest:
                out[item["path"]] = digest
    return out


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in data.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        elif isinstance(v, int | float | str | bool) or v is None:
            out[key] = v
    return out


def read_metrics(root: Path, paths: list[str]) -> dict[str, Any]:
    """Metrics files, flattened: `{"accuracy": 0.98, ...}` (file name prefixed on collision)."""
    merged: dict[str, Any] = {}
    for rel in paths:
        path = root / rel
        try:
            data = json.loads(path.read_text()) if path.suffix == ".json" else load_yaml_file(path)
        except (OSError, ValueError, yaml.YAMLError, ConfigError):
            continue
        for k, v in _flatten(data if isinstance(data, dict) else {}).items():
            merged[k if k not in merged else f"{rel}:{k}"] = v
    return merged


def read_bundle_metadata(root: Path, bundle: str) -> dict[str, Any] | None:
    try:
        return json.loads((root / bundle / "metadata.json").read_text())
    except (OSError, ValueError):
        return None


def read_gates(
    root: Path, layout: Layout, stages: list[str]
) -> tuple[list[GateResult], dict[str, Any], dict[str, Any]]:
    """Gate results, verdicts and analysis (slices, tuning) the evaluate stages wrote into the
    bundle's metadata."""
    gates: list[GateResult] = []
    verdicts: dict[str, Any] = {}
    analysis: dict[str, Any] = {}
    known = {f.name for f in fields(GateResult)}
    for name in stages:
        if name not in layout.evaluate:
            continue
        meta = read_bundle_metadata(root, layout.bundle)
        if meta is None:
            continue
        verdict = meta.get("verdict", {})
        verdicts[name] = verdict
        for g in verdict.get("gates", []):
            gates.append(GateResult(stage=name, **{k: v for k, v in g.items() if k in known}))
        analysis["slices"] = meta.get("slices") or []
        if meta.get("tuning"):
            analysis["tuning"] = meta["tuning"]
    return gates, verdicts, analysis


def gate_line(g: GateResult) -> str:
    """`accuracy not_worse_than main 0.97: got 0.95 (baseline 0.98, tolerance 0.01; short by…)`."""
    text = f"{g.metric} {g.rule} {g.threshold}: got {g.value}"
    if g.slice:
        text += f" in slice {g.slice}"
    detail = []
    if g.baseline is not None:
        detail.append(f"baseline {g.baseline} in {g.baseline_ref}")
        detail.append(f"tolerance {g.tolerance}{' relative' if g.relative else ''}")
    if g.margin is not None:
        detail.append(f"{'over' if g.rule == 'max' else 'short'} by {abs(g.margin):.4g}")
    return text + (f" ({', '.join(detail)})" if detail else "")


def _write_card(root: Path, record: RunRecord) -> None:
    """The model card of this run (`mlops.reports.card`); a card that cannot be written does
    not fail the run."""
    from mlops.config import load_project
    from mlops.reports.card import write_card

    with contextlib.suppress(OSError, MlopsError):
        write_card(load_project(root), record)


def prune_logs(root: Path) -> None:
    base = root / LOG_ROOT
    if not base.is_dir():
        return
    runs = sorted(p for p in base.iterdir() if p.is_dir())
    for old in runs[:-KEEP_LOGS]:
        shutil.rmtree(old, ignore_errors=True)


def finalize(
    result: RunResult, root: Path, home: Path, plan: list[str], layout: Layout, dry: bool = False
) -> RunResult:
    """Read gates, metrics and hashes; set the outcome; save the run record (in `home`)."""
    record = result.record
    if not dry:  # times and commits the stages kept out of their tracked outputs
        facts = collect_facts(root, [s.name for s in result.stages if s.status == "ran"])
        if facts:
            record.extra["facts"] = facts
    if dry:
        record.outcome = "dry"
    elif result.error is None:
        result.gates, record.verdict, analysis = read_gates(root, layout, plan)
        record.extra.update(analysis)
        failed_gates = [g for g in result.gates if not g.passed]
        if failed_gates:
            result.error = GateFailedError(
                "the model failed its quality gates: "
                + "; ".join(gate_line(g) for g in failed_gates),
                "The bundle is kept but marked unblessed; improve the model or change the gates "
                "in pipeline.yaml.",
            )
    lock = read_lock(root)
    record.deps = lock_hashes(lock, plan, "deps")
    record.outs = lock_hashes(lock, plan, "outs")
    for s in result.stages:
        if s.status in FRESH:  # a failed or not-run stage has no fresh metrics
            s.metrics = read_metrics(root, layout.metrics.get(s.name, []))
    fresh_stages = [s.name for s in result.stages if s.status in FRESH]
    record.metrics = read_metrics(
        root, [p for n in fresh_stages for p in layout.metrics.get(n, [])]
    )
    record.stages = [
        {"name": s.name, "status": s.status, "seconds": s.seconds} for s in result.stages
    ]
    record.ended = time.time()
    if result.error is not None:
        record.exit_code = int(result.error.exit_code)
        record.outcome = {3: "validation_failed", 4: "gate_failed"}.get(record.exit_code, "failed")
        record.message = result.error.message
    elif record.outcome != "dry":
        record.outcome = "ok"
    if not dry:  # a dry run changed nothing: it is shown, not recorded
        RunStore(home).save(record)
        evaluated = any(
            s.name in layout.evaluate and s.status in ("ran", "cached") for s in result.stages
        )
        card_missing = not (root / "reports/model-card.md").exists()  # mlops.reports.card
        if (
            root == home  # an experiment's scratch tree (recorded in `home`) is thrown away
            and record.verdict
            and record.outcome in ("ok", "gate_failed")
            and (evaluated or card_missing)
        ):
            _write_card(root, record)
    prune_logs(home)
    return result

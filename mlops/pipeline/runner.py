"""`mlops run`: compile, reproduce through DVC (or prove nothing changed), record the run."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from mlops.adapters import dvc, git
from mlops.config import Project, load_project, topological
from mlops.config.yamlfile import read_yaml
from mlops.errors import (
    DataValidationError,
    GateFailedError,
    MlopsError,
    StageFailedError,
    UsageError,
)
from mlops.pipeline import fresh
from mlops.pipeline.baseline import write_baselines
from mlops.pipeline.compile import write_dvc_yaml
from mlops.pipeline.records import RunRecord, RunStore, new_run_id

LOG_ROOT = Path(".mlops/logs")
KEEP_LOGS = 30
StageEvent = dvc.StageEvent


@dataclass
class StageResult:
    name: str
    status: str  # ran | skipped | failed | not run | would run
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


def ensure_project(root: Path) -> Project:
    """Load the config and check the repository is ready for DVC."""
    project = load_project(root)
    if git.toplevel(project.root) is None:
        raise UsageError(
            f"{project.root} is not inside a git repository",
            "Run `mlops init` here (it creates the git and DVC set-up), or `git init`.",
        )
    if not (project.root / ".dvc").is_dir():
        raise UsageError(
            f"DVC is not initialised in {project.root}",
            "Run `mlops init` (keeps your files) or `dvc init`.",
        )
    return project


def prepare(project: Project, log: Path) -> bool:
    """Write dvc.yaml when pipeline.yaml changed and keep DVC's default remote in sync.

    Also resolves the baselines of `not_worse_than` gates (`mlops.pipeline.baseline`).
    """
    compiled = write_dvc_yaml(project)
    write_baselines(project)
    remote = project.pipeline.remote
    if not dvc.remote_configured(project.root, remote.name, remote.url):
        dvc.configure_remote(project.root, remote.name, remote.url, log)
    return compiled


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
    if not path.exists():
        return {}
    data = read_yaml(path, with_lines=False).data or {}
    return data.get("stages", {}) if isinstance(data, dict) else {}


def _hashes(lock: dict[str, Any], stages: list[str], key: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for name in stages:
        for item in lock.get(name, {}).get(key, []) or []:
            digest = item.get("md5") or item.get("hash") or item.get("etag")
            if item.get("path") and digest:
                out[item["path"]] = digest
    return out


def read_metrics(project: Project, stages: list[str]) -> dict[str, Any]:
    """Metrics files of `stages`, flattened: `{"accuracy": 0.98, ...}` (file name on collision)."""
    merged: dict[str, Any] = {}
    for name in stages:
        for out in project.stages[name].outs:
            if out.kind != "metrics":
                continue
            path = project.root / out.path
            try:
                data = json.loads(path.read_text()) if path.suffix == ".json" else None
                if data is None:
                    data = read_yaml(path, with_lines=False).data
            except (OSError, ValueError, MlopsError):
                continue
            for k, v in _flatten(data or {}).items():
                merged[k if k not in merged else f"{out.path}:{k}"] = v
    return merged


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in data.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        elif isinstance(v, int | float | str | bool) or v is None:
            out[key] = v
    return out


def read_gates(project: Project, stages: list[str]) -> tuple[list[GateResult], dict[str, Any]]:
    """The verdict the evaluate stages wrote into the model bundle's metadata."""
    gates: list[GateResult] = []
    verdicts: dict[str, Any] = {}
    for name in stages:
        st = project.stages[name]
        if st.kind != "evaluate":
            continue
        meta = project.root / project.pipeline.model.path / "metadata.json"
        try:
            verdict = json.loads(meta.read_text()).get("verdict", {})
        except (OSError, ValueError):
            continue
        verdicts[name] = verdict
        known = {f.name for f in fields(GateResult)}
        for g in verdict.get("gates", []):
            gates.append(GateResult(stage=name, **{k: v for k, v in g.items() if k in known}))
    return gates, verdicts


def read_analysis(project: Project, stages: list[str]) -> dict[str, Any]:
    """Per-slice metrics and the tuning search the evaluate stages wrote into the bundle."""
    out: dict[str, Any] = {}
    for name in stages:
        if project.stages[name].kind != "evaluate":
            continue
        meta = project.root / project.pipeline.model.path / "metadata.json"
        try:
            data = json.loads(meta.read_text())
        except (OSError, ValueError):
            continue
        out["slices"] = data.get("slices") or []
        if data.get("tuning"):
            out["tuning"] = data["tuning"]
    return out


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
        detail.append(f"short by {abs(g.margin):.4g}")
    return text + (f" ({', '.join(detail)})" if detail else "")


def _prune_logs(root: Path) -> None:
    base = root / LOG_ROOT
    if not base.is_dir():
        return
    runs = sorted(p for p in base.iterdir() if p.is_dir())
    for old in runs[:-KEEP_LOGS]:
        shutil.rmtree(old, ignore_errors=True)


def error_block(path: str | Path | None, limit: int = 200) -> list[str]:
    """The lines of a stage log from its `error:` line on (a validation report lists every
    problem; the usual 12-line tail would cut it)."""
    lines = tail(path, 10_000)
    start = next((i for i, ln in enumerate(lines) if ln.startswith("error:")), None)
    if start is None:
        return []
    block = [lines[start][len("error:") :].strip()]
    for ln in lines[start + 1 : start + limit]:
        if ln.startswith("hint:"):
            break
        block.append(ln)
    return block


def _stage_error(failed: StageResult) -> MlopsError:
    text = "\n".join(failed.tail[-12:])
    hint = f"Full output: {failed.log}" if failed.log else None
    if failed.exit_status == 3:
        text = "\n".join(error_block(failed.log)) or text
        return DataValidationError(f"stage {failed.name!r} found invalid data:\n{text}", hint)
    if failed.exit_status == 4:
        return GateFailedError(f"stage {failed.name!r} failed a quality gate:\n{text}", hint)
    if failed.exit_status == 2:
        return UsageError(
            f"stage {failed.name!r} stopped on a configuration problem:\n{text}",
            (hint + ". " if hint else "") + "dvc.lock and the outputs were left as they were.",
        )
    return StageFailedError(
        f"stage {failed.name!r} failed"
        + (f" (exit status {failed.exit_status})" if failed.exit_status is not None else "")
        + (f":\n{text}" if text else ""),
        (hint + ". " if hint else "")
        + "Outputs and dvc.lock were left as they were before this run; fix and rerun.",
    )


def run_pipeline(
    root: Path | str = ".",
    targets: list[str] | None = None,
    *,
    force: bool = False,
    dry: bool = False,
    kind: str = "run",
    on_event: Callable[[StageEvent], None] | None = None,
    record_root: Path | None = None,
    extra: dict[str, Any] | None = None,
) -> RunResult:
    """Run the pipeline (or `targets` and what they need); always returns a recorded result.

    `record_root` records the run (and keeps its logs) in another project than the one run:
    experiments run in a scratch copy and are recorded in the user's project. `extra` goes
    into the record as is (e.g. an experiment's overrides).
    """
    project = ensure_project(Path(root))
    root = project.root
    home = Path(record_root).resolve() if record_root else root
    unknown = [t for t in targets or [] if t not in project.stages]
    if unknown:
        raise UsageError(
            f"unknown stage{'s' if len(unknown) > 1 else ''}: {', '.join(unknown)}",
            f"Stages in pipeline.yaml: {', '.join(project.stages)}.",
        )
    plan = topological(project.stages, targets or None)
    started = time.time()
    record = RunRecord(
        id=new_run_id(started),
        kind=kind,
        started=started,
        targets=list(targets or []),
        git_commit=git.head(root),
        git_dirty=git.is_dirty(root),
        git_branch=git.branch(root),
        params=project.params_raw,
        extra=dict(extra or {}),
    )
    if record_root:
        record.git_branch = git.branch(home)
    log_dir = home / LOG_ROOT / record.id
    compiled = prepare(project, log_dir / "prepare.log")
    result = RunResult(record, [], compiled=compiled)

    if not force and not dry and fresh.is_fresh(project, plan):
        result.fast = True
        result.stages = [StageResult(n, "skipped") for n in plan]
        for s in result.stages:
            if on_event:
                on_event(StageEvent(s.name, "end", "skipped"))
    else:
        lock_path = root / "dvc.lock"
        lock_before = lock_path.read_bytes() if lock_path.exists() else None
        try:
            events = dvc.reproduce(
                root, targets, force=force, dry=dry, log_dir=log_dir, on_event=on_event
            )
            result.stages = [
                StageResult(e.stage, e.status, e.seconds, str(e.log) if e.log else None)
                for e in events
            ]
        except dvc.ReproFailed as exc:
            # transactional: dvc.lock describes the last complete run; the failed stage's
            # outputs go back to what that lock records
            if lock_before is None:
                lock_path.unlink(missing_ok=True)
            else:
                lock_path.write_bytes(lock_before)
            if lock_before is not None:
                dvc.checkout(root, [exc.stage], log_dir / "restore.log")
            fresh.clear_stamp(project)
            seen = {e.stage: e for e in exc.events}
            for name in plan:
                ev = seen.get(name)
                if ev is None:
                    result.stages.append(StageResult(name, "not run"))
                    continue
                st = StageResult(name, ev.status, ev.seconds, str(ev.log) if ev.log else None)
                if ev.status == "failed":
                    st.exit_status, st.error, st.tail = ev.exit_status, ev.error, tail(ev.log)
                result.stages.append(st)
            failed = next(s for s in result.stages if s.status == "failed")
            result.error = _stage_error(failed)
    if dry:
        record.outcome = "dry"
    elif result.error is None:
        if not result.fast:
            fresh.write_stamp(project, plan)
        result.gates, record.verdict = read_gates(project, plan)
        record.extra.update(read_analysis(project, plan))
        failed_gates = [g for g in result.gates if not g.passed]
        if failed_gates:
            lines = [gate_line(g) for g in failed_gates]
            result.error = GateFailedError(
                "the model failed its quality gates: " + "; ".join(lines),
                "The bundle is kept but marked unblessed; improve the model or change the gates "
                "in pipeline.yaml.",
            )
    lock = read_lock(root)
    record.deps = _hashes(lock, plan, "deps")
    record.outs = _hashes(lock, plan, "outs")
    for s in result.stages:
        if s.status in ("ran", "cached", "skipped"):  # a failed or not-run stage has no fresh ones
            s.metrics = read_metrics(project, [s.name])
    fresh_stages = [s.name for s in result.stages if s.status in ("ran", "cached", "skipped")]
    record.metrics = read_metrics(project, fresh_stages)
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
    RunStore(home).save(record)
    _prune_logs(home)
    return result

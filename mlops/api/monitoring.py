"""Use cases over live traffic and new data: `mlops monitor` and `mlops watch`.

Re-exported by `mlops.api`; like it, this module imports no domain package at load."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mlops.api._records import push_records

if TYPE_CHECKING:
    from mlops.monitor.checks import MonitorReport as MonitorReport
    from mlops.monitor.trigger import WatchResult as WatchResult


@dataclass
class MonitorSettings:
    """What `mlops monitor`'s options say: the window (`since`, a duration such as "1h"; `now`
    its end, default the clock), where the log is (`log_dir`; `log_url`: the segments servers
    shipped there with `mlops serve --log-url`), and what to do with the result."""

    since: str | None = None
    log_dir: Path | str | None = None
    log_url: str | None = None
    dry_run: bool = False
    push: bool | None = None
    remote: str = "origin"
    now: float | None = None


def monitor(
    root: Path | str = ".", env: str | None = None, settings: MonitorSettings | None = None
) -> MonitorReport:
    """Check an environment's live traffic and act on a breach (`mlops monitor`).

    Returns the report (`report.breached`, `report.action`); a breach is not raised."""
    from mlops.monitor.commands import monitor_project

    s = settings or MonitorSettings()
    report = monitor_project(
        root,
        env,
        since=s.since,
        log_dir=s.log_dir,
        dry_run=s.dry_run,
        push=s.push,
        remote=s.remote,
        now=s.now,
        log_url=s.log_url,
    )
    if not s.dry_run:
        push_records(root, s.push, s.remote)
    return report


def watch(
    root: Path | str = ".",
    *,
    dry_run: bool = False,
    push: bool | None = None,
    remote: str = "origin",
) -> WatchResult:
    """Retrain when the ingest source has new data (`mlops watch`, `mlops run --if-new-data`).

    Returns a `WatchResult`; a failed retrain is in `result.action` (status `failed`)."""
    from mlops.monitor.trigger import watch as watch_sources

    result = watch_sources(root, dry_run=dry_run, push=push, remote=remote)
    if result.action is not None and not dry_run:
        push_records(root, push, remote)
    return result

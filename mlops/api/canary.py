"""Canary and shadow releases (`mlops deploy --canary/--shadow`, `mlops canary ...`): the use
cases over mlops.deploy.canary and mlops.monitor.canary, each under the repository lock."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops.adapters import lock

if TYPE_CHECKING:
    from mlops.deploy.canary import CanaryResult as CanaryResult
    from mlops.monitor.canary import CanaryReport as CanaryReport


def deploy_canary(
    root: Path | str,
    env: str,
    *,
    percent: float | None = None,
    shadow: bool = False,
    version: str | None = None,
    force: bool = False,
    push: bool | None = None,
    remote: str = "origin",
    on_step: Callable[[dict[str, Any]], None] | None = None,
) -> CanaryResult:
    """Start a canary (`percent` of the answers) or a shadow release of the desired version (or
    `version`) beside the live one (`mlops deploy --canary/--shadow`)."""
    from mlops.deploy import canary

    with lock.repository(root):
        return canary.start(
            root, env, percent=percent, shadow=shadow, version=version, force=force, push=push,
            remote=remote, on_step=on_step,
        )  # fmt: skip


def promote_canary(
    root: Path | str, env: str, *, full: bool = False, push: bool | None = None,
    remote: str = "origin",
) -> CanaryResult:  # fmt: skip
    """Step the release in `env` forward; past the last step the candidate goes live."""
    from mlops.deploy import canary

    with lock.repository(root):
        return canary.promote(root, env, full=full, push=push, remote=remote)


def abort_canary(
    root: Path | str, env: str, *, reason: str = "aborted by hand", push: bool | None = None,
    remote: str = "origin",
) -> CanaryResult:  # fmt: skip
    """End the release in `env`; live keeps answering everything."""
    from mlops.deploy import canary

    with lock.repository(root):
        return canary.abort(root, env, reason=reason, push=push, remote=remote)


def canary_check(
    root: Path | str, env: str, *, act: bool = False, log_dir: Path | str | None = None,
    push: bool | None = None, remote: str = "origin",
) -> CanaryReport:  # fmt: skip
    """Compare the release in `env` with live; with `act`, abort or promote as decided."""
    from mlops.monitor.canary import check_release

    if not act:
        return check_release(root, env, log_dir=log_dir)
    with lock.repository(root):
        return check_release(root, env, act=True, log_dir=log_dir, push=push, remote=remote)


def release_report(
    root: Path | str, env: str, *, log_dir: Path | str | None = None
) -> CanaryReport | None:
    """The comparison of the release in progress in `env` with live (for `mlops monitor`), or
    None when no canary or shadow is in progress."""
    from mlops.deploy.canary import status

    if status(root, env) is None:
        return None
    return canary_check(root, env, log_dir=log_dir)

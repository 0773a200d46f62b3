"""The warm runner of the built-in stages (`mlops runner start|stop|status`, and the session
`mlops run` / `mlops exp run` keep for their own duration): use cases over mlops.runner."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mlops.runner.lifecycle import RunnerInfo as RunnerInfo


def runner_start(root: Path | str = ".", *, idle: float = 0.0) -> RunnerInfo:
    """Start this repository's runner and leave it running (`idle` seconds without a stage end
    it; 0: until `runner_stop`)."""
    from mlops.runner.lifecycle import start

    return start(root, idle=idle)


def runner_start_early(root: Path | str = ".") -> None:
    """Start the runner of `mlops run --force` before the CLI loads (`mlops.entry`); the
    command's `runner_session` takes it over, or stops it. Never fails."""
    from mlops.runner.lifecycle import start_early

    start_early(root)


def runner_stop(root: Path | str = ".") -> RunnerInfo | None:
    """Stop this repository's runner (stages it runs finish first); None when none listened."""
    from mlops.runner.lifecycle import stop

    return stop(root)


def runner_status(root: Path | str = ".") -> RunnerInfo | None:
    """The runner listening for this repository, or None."""
    from mlops.runner.lifecycle import status

    return status(root)


@contextlib.contextmanager
def runner_session(
    root: Path | str = ".",
    *,
    enabled: bool = True,
    targets: list[str] | None = None,
    force: bool = True,
) -> Iterator[RunnerInfo | None]:
    """A runner for the duration of a command (none when one already listens or not `enabled`;
    with `force=False`, only when two or more built-in stages of `targets` will run)."""
    from mlops.runner.lifecycle import session

    with session(root, enabled=enabled, targets=targets, force=force) as info:
        yield info

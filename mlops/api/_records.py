"""Pushing the run records where a command pushed (shared by the use cases that push).

Like `mlops.api`, this module imports no domain package at load."""

from __future__ import annotations

from pathlib import Path


def push_records(root: Path | str, push: bool | None, remote: str) -> None:
    """Push the run records where the command pushed (best effort: a record is never worth
    failing a command that did its work)."""
    from mlops.adapters import git
    from mlops.pipeline import gitrecords

    root = Path(root).resolve()
    if push is False or remote not in git.remotes(root) or not gitrecords.local_refs(root):
        return
    gitrecords.push(root, remote, attempts=2)

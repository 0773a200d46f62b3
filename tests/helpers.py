"""Helpers for tests: git in one call."""

from __future__ import annotations

import subprocess
from pathlib import Path


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout.strip()


def commit_all(cwd: Path, message: str = "commit") -> str:
    git(cwd, "add", "-A")
    git(cwd, "commit", "-q", "-m", message, "--allow-empty")
    return git(cwd, "rev-parse", "HEAD")


def replaced(path: Path, old: str, new: str, count: int = -1) -> str:
    """The text of `path` with `old` replaced by `new`. Fails when `old` is not in the file: an
    edit of template YAML whose text changed would otherwise do nothing, silently."""
    text = path.read_text(encoding="utf-8")
    if old not in text:
        raise AssertionError(f"{path.name} no longer contains {old!r}: update the test's edit")
    return text.replace(old, new, count)


def replace_in(path: Path, old: str, new: str, count: int = -1) -> None:
    """Edit `path` in place: `replaced`, written back."""
    path.write_text(replaced(path, old, new, count), encoding="utf-8")

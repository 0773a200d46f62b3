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

"""Scratch directories of object-store targets: a process's own, removed once it is gone (a
SIGKILLed deploy leaves one; the next `mlops` that opens a target removes it)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from mlops.deploy.remote import new_scratch_root, remove_dead_scratch


def test_dead_processes_scratch_is_removed_alive_and_foreign_ones_stay(tmp_path: Path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    gone = tmp_path / f"mlops-target-{dead.pid}-abcd1234"
    (gone / "v1-0000" / "sub").mkdir(parents=True)
    (gone / "v1-0000" / "sub" / "model.skops").write_bytes(b"x" * 100)
    alive = tmp_path / f"mlops-target-{os.getpid()}-abcd1234"
    alive.mkdir()
    odd = tmp_path / "mlops-target-notapid-1"
    odd.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    link = tmp_path / f"mlops-target-{dead.pid}-link"
    link.symlink_to(elsewhere)  # a planted link is never followed
    assert remove_dead_scratch(tmp_path) == [gone]
    assert not gone.exists()
    assert alive.is_dir() and odd.is_dir() and link.is_symlink() and elsewhere.is_dir()
    mine = new_scratch_root(tmp_path)  # opening a new one sweeps too
    assert mine.name.startswith(f"mlops-target-{os.getpid()}-") and mine.is_dir()
    assert oct(mine.stat().st_mode & 0o777) == "0o700"

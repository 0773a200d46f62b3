"""Volatile facts of a stage run (times, the commit and state of the work tree).

They must not go into outputs DVC tracks (the same commit, data and params give the same bytes),
so a stage writes them to `.mlops/facts/<stage>.json` (git-ignored) and `mlops run` moves them
into the run record (`extra.facts`), where `mlops runs show --json` shows them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

FACTS_DIR = Path(".mlops/facts")


def write_facts(root: Path, stage: str, facts: dict[str, Any]) -> None:
    """Record `facts` of `stage` for the run record (atomic write; never fails the stage)."""
    folder = Path(root) / FACTS_DIR
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".{stage}.json.tmp-{os.getpid()}"
        tmp.write_text(json.dumps(facts, indent=2, default=str) + "\n", encoding="utf-8")
        os.replace(tmp, folder / f"{stage}.json")
    except OSError:
        pass


def collect_facts(root: Path, stages: list[str]) -> dict[str, Any]:
    """The facts the given stages wrote during this run, removed once read (a later run that
    does not run the stage must not report stale ones). Unreadable files are skipped."""
    out: dict[str, Any] = {}
    for stage in stages:
        path = Path(root) / FACTS_DIR / f"{stage}.json"
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        finally:
            path.unlink(missing_ok=True)
        if isinstance(data, dict):
            out[stage] = data
    return out

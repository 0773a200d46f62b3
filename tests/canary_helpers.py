"""Helpers for the canary tests: a local target with a live version and a candidate installed
beside it (real bundles, no git), and a server following it."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from mlops.deploy import canary as records
from mlops.deploy.target import Target, open_target
from tests.serve_helpers import build_bundle

_BUNDLES: dict[float, Path] = {}


def bundle(tmp_root: Path, C: float) -> Path:
    """A real penguin bundle fitted with LogisticRegression(C) (built once per session)."""
    if C not in _BUNDLES:
        _BUNDLES[C] = build_bundle(tmp_root / f"bundle-C{C:g}", C=C)
    return _BUNDLES[C]


def two_versions(tmp: Path, bundles: Path, live_C: float = 1.0, cand_C: float = 0.5) -> Target:
    """A target where v0.0.1 (live_C) is live and v0.0.2 (cand_C) is installed beside it."""
    target = open_target(tmp / "target", create=True)
    target.install(bundle(bundles, live_C), "v0.0.1", name="penguins-classifier")
    target.install(bundle(bundles, cand_C), "v0.0.2", name="penguins-classifier")
    target.switch("v0.0.1")
    return target


def start_release(target: Target, mode: str = "canary", percent: float = 10) -> dict[str, Any]:
    """Write the canary record for v0.0.2 as `mlops deploy --canary` does."""
    record = {
        "id": "test",
        "mode": mode,
        "version": "v0.0.2",
        "percent": 0 if mode == "shadow" else percent,
        "live": "v0.0.1",
        "steps": [10, 50, 100],
        "started_at": "2026-01-01T00:00:00+00:00",
        "step_started": time.time() - 1,
        "dvc_md5": (target.deployment("v0.0.2") or {}).get("dvc_md5", ""),
    }
    records.write_record(target, record)
    return record


def wait_for(predicate: Any, timeout: float = 20.0) -> None:
    """Poll `predicate` until true (servers follow records at their next poll)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.02)

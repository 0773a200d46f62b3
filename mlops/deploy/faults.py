"""Crash points for testing that a deployment survives being killed at any step.

`MLOPS_DEPLOY_FAULT=kill@STEP` makes `mlops deploy` SIGKILL itself when it reaches checkpoint
STEP (no clean-up handler runs, exactly as if the machine or the CI job died there). The steps,
in order: `fetched`, `verified`, `install-copied` (the copy is complete in a temporary
directory, not yet renamed into place), `installed`, `smoke-tested`, `switch-linked` (the new
symlink made beside `current`, not yet renamed over it), `switched` (`current` points at the
new version; nothing recorded yet), `tagged` (stage tag written, history not yet), `recorded`
(history written, the journal not yet removed). Unset, a checkpoint costs one dictionary
lookup.
"""

from __future__ import annotations

import os
import signal

FAULT_ENV = "MLOPS_DEPLOY_FAULT"
STEPS = (
    "fetched",
    "verified",
    "install-copied",
    "installed",
    "smoke-tested",
    "switch-linked",
    "switched",
    "tagged",
    "recorded",
)


def checkpoint(step: str) -> None:
    """Die here (SIGKILL) when `MLOPS_DEPLOY_FAULT` says `kill@<step>`."""
    spec = os.environ.get(FAULT_ENV)
    if not spec:
        return
    action, _, at = spec.partition("@")
    if at == step and action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)

"""After a rollback of a pinned environment: the merge request that pins the version now live.

A rollback deploys the previous version at once (a stage tag records it), but the pin file
(`deploy/<env>.yaml`) still names the version rolled back from: git would say the environment
should run the bad version again. `mlops rollback`, the monitor's rollback and `mlops deploy
--rollback` (the CI template's manual job) all end the same way: a branch that pins the live
version, pushed with GitLab's merge-request push options (`promote`'s code path).
"""

from __future__ import annotations

from typing import Any

from mlops.adapters import git
from mlops.config import Project
from mlops.errors import MlopsError
from mlops.registry.desired import read_pin


def pin_merge_request(
    project: Project,
    env: str,
    version: str,
    rollback_from: str | None,
    remote: str = "origin",
) -> tuple[str, dict[str, Any] | None]:
    """Open the merge request that pins `version` in `env`'s pin file; returns (a line saying
    what happened, the promotion's details or None). Never raises: the rollback itself is done,
    the line says what to do by hand when the request could not be opened."""
    from mlops.registry.promote import promote

    spec = project.pipeline.environments[env]
    name = project.pipeline.model.name
    if spec.pin is None:
        return f"{env} follows no pin file: nothing to re-pin", None
    pin = read_pin(project.root, spec.pin)
    if pin is not None and pin.version == version:
        return f"{spec.pin} already pins {version}", None
    by_hand = f"`mlops promote {name} {version} --to {env}`"
    if git.remote_url(project.root, remote) is None:
        return f"no git remote {remote!r}: pin {version} by hand ({by_hand})", None
    try:
        pr = promote(
            project.root,
            name,
            version,
            env,
            push=True,
            remote=remote,
            force=True,
            rollback_from=rollback_from,
            project=project,
        )
    except MlopsError as exc:
        return f"the pin's merge request was not opened: {exc.message} (then {by_hand})", None
    return f"pushed {pr.branch} for the pin's merge request; {pr.next_step}", pr.to_dict()

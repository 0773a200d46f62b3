"""Use cases over deployments: deploy (with its run record, notifications, re-pin and
Kubernetes manifests), the manifests alone, and what each environment runs.

Re-exported by `mlops.api`; like it, this module imports no domain package at load."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops.api._records import push_records

if TYPE_CHECKING:
    from mlops.deploy.deployer import DeployResult as DeployResult
    from mlops.deploy.envs import EnvStatus as EnvStatus
    from mlops.deploy.k8s import Rendered as Rendered
    from mlops.pipeline.records import RunRecord as RunRecord


def deploy(
    root: Path | str,
    env: str,
    *,
    version: str | None = None,
    from_tag: str | None = None,
    rollback: bool = False,
    force: bool = False,
    push: bool | None = None,
    remote: str = "origin",
    on_step: Callable[[dict[str, Any]], None] | None = None,
) -> DeployResult:
    """Deploy a registered version to an environment (`mlops deploy`): fetch, verify, install,
    smoke-test, switch, record. A failure raises `DeployError` (exit 6) naming the step.

    When the environment has `kubernetes:`, its manifests are rendered for the deployed
    version and committed (pushed with `push`) for Argo CD or Flux (`manifests`).
    The deployment is also a run record (kind `deploy` or `rollback`, pushed with `push`), and
    `monitoring.notify` hears of failures and rollbacks.
    A rollback of a pinned environment then opens the merge request that pins the version now
    live (unless `push` is False), as `mlops rollback` and the monitor's rollback do."""
    import time

    from mlops.config import load_project
    from mlops.deploy.deployer import deploy as deploy_version
    from mlops.deploy.records import record_deploy
    from mlops.errors import DeployError, MlopsError

    started = time.time()
    try:
        result = deploy_version(
            root,
            env,
            version=version,
            from_tag=from_tag,
            rollback=rollback,
            force=force,
            push=push,
            remote=remote,
            on_step=on_step,
        )
    except MlopsError as exc:
        if isinstance(exc, DeployError):
            record = record_deploy(Path(root).resolve(), env, started=started, error=exc)
            _notify_deploy(root, record)
            push_records(root, push, remote)
        raise
    from mlops.config.targets import container_note

    if (note := container_note(env, result.target)) is not None:  # a CI job in a container
        result.notes.append(note)
    if rollback and push is not False and result.action == "deployed":
        from mlops.deploy.repin import pin_merge_request

        project = load_project(root)
        if project.pipeline.environments[env].pin is not None:
            line, result.merge_request = pin_merge_request(
                project, env, result.version, result.rollback_from, remote
            )
            if result.merge_request is not None:  # the note "make it durable" is done
                result.notes = [n for n in result.notes if "Make it durable" not in n]
            result.notes.append(line)
    record = record_deploy(
        Path(root).resolve(), env, started=started, result=result, rollback=rollback
    )
    if record is not None and record.kind == "rollback" and result.action == "deployed":
        _notify_deploy(root, record)
    from mlops.deploy.manifests import has_kubernetes, render_manifests

    if result.action != "failed" and has_kubernetes(root, env):
        rendered = render_manifests(
            root, env, version=result.version, commit=True, push=bool(push), remote=remote
        )
        what = ", ".join(rendered.changed) or "unchanged"
        result.notes.append(f"Kubernetes manifests in {rendered.directory}: {what}")
        if rendered.pushed:
            result.notes.append(f"Kubernetes manifests pushed to {rendered.pushed}")
    push_records(root, push, remote)
    return result


def _notify_deploy(root: Path | str, record: RunRecord | None) -> None:
    """Tell `monitoring.notify` about a failed deployment or a rollback (best effort)."""
    if record is None:
        return
    from mlops.monitor.notify import notify_event

    notify_event(Path(root).resolve(), record)


def manifests(
    root: Path | str,
    env: str,
    *,
    version: str | None = None,
    commit: bool = False,
    push: bool = False,
    remote: str = "origin",
) -> Rendered:
    """Render an environment's Kubernetes manifests into deploy/k8s/ENV/ (`mlops manifests`)."""
    from mlops.deploy.manifests import render_manifests

    return render_manifests(root, env, version=version, commit=commit, push=push, remote=remote)


def envs(root: Path | str = ".") -> list[EnvStatus]:
    """What each environment runs, since when, and what it should run (`mlops envs`)."""
    from mlops.deploy.envs import environments

    return environments(root)

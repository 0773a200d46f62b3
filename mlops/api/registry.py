"""Use cases over the model registry: register, show, lineage, promote, roll back, deprecate,
deregister, and the version an environment should run.

Re-exported by `mlops.api`; like it, this module imports no domain package at load."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from mlops.api._records import push_records

if TYPE_CHECKING:
    from mlops.registry import Registry as Registry
    from mlops.registry.desired import Desired as Desired
    from mlops.registry.lineage import DeploymentReader as DeploymentReader
    from mlops.registry.lineage import Lineage as Lineage
    from mlops.registry.promote import PromoteResult as PromoteResult
    from mlops.registry.promote import TagResult as TagResult
    from mlops.registry.register import RegisterResult as RegisterResult


def register(
    root: Path | str = ".",
    name: str | None = None,
    *,
    version: str | None = None,
    bump: str | None = None,
    ref: str = "HEAD",
    push: bool = False,
    force: bool = False,
    remote: str = "origin",
    message: str | None = None,
    skip_registered: bool = False,
) -> RegisterResult:
    """Register the bundle committed at `ref` as a new version (`mlops register`); with `push`,
    the run records go to `remote` too."""
    from mlops.registry import register as registry_register

    result = registry_register.register(
        root,
        name,
        version=version,
        bump=bump,
        ref=ref,
        push=push,
        force=force,
        remote=remote,
        message=message,
        skip_registered=skip_registered,
    )
    if push:
        push_records(root, push, remote)
    return result


def registry_show(root: Path | str = ".") -> Registry:
    """The registry, read from the tags (`mlops registry show`, `mlops registry history`)."""
    from mlops.registry import read_registry

    return read_registry(root)


def lineage(root: Path | str, spec: str) -> Lineage:
    """Commit, params, data hashes, metrics, verdict, stages and deployments of `NAME@vX.Y.Z`."""
    from mlops.registry import lineage as registry_lineage

    return registry_lineage.lineage(root, spec, deployment_readers=deployment_readers())


def deployment_readers() -> tuple[DeploymentReader, ...]:
    """Where lineage finds a version's deployments: every reader, listed here (a new kind of
    deployment adds its reader to this tuple; nothing registers itself at import)."""
    from mlops.deploy.envs import deployment_records

    return (deployment_records,)


def promote(
    root: Path | str,
    name: str,
    version: str,
    env: str,
    *,
    push: bool = False,
    remote: str = "origin",
    force: bool = False,
) -> PromoteResult:
    """Promote a version to an environment (`mlops promote`): a stage tag, or a merge request."""
    from mlops.registry import promote as registry_promote

    return registry_promote.promote(root, name, version, env, push=push, remote=remote, force=force)


def rollback(
    root: Path | str,
    env: str,
    name: str | None = None,
    *,
    push: bool = False,
    remote: str = "origin",
) -> PromoteResult:
    """Promote the version `env` ran before its current one (`mlops rollback`)."""
    from mlops.registry import promote as registry_promote

    return registry_promote.rollback(root, env, name, push=push, remote=remote)


def deprecate(
    root: Path | str,
    name: str,
    *,
    push: bool = False,
    remote: str = "origin",
    message: str | None = None,
) -> TagResult:
    """Deprecate an artifact: `NAME@deprecated` (`mlops deprecate`)."""
    from mlops.registry import promote as registry_promote

    return registry_promote.deprecate(root, name, push=push, remote=remote, message=message)


def deregister(
    root: Path | str,
    name: str,
    version: str,
    *,
    push: bool = False,
    remote: str = "origin",
    message: str | None = None,
) -> TagResult:
    """Deregister a version: `NAME@vX.Y.Z!` (`mlops deregister`)."""
    from mlops.registry import promote as registry_promote

    return registry_promote.deregister(
        root, name, version, push=push, remote=remote, message=message
    )


def desired(root: Path | str, env: str, name: str | None = None) -> Desired:
    """The version environment `env` should run (tracked latest, or its pin file)."""
    from mlops.registry.desired import desired_version

    return desired_version(root, env, name)

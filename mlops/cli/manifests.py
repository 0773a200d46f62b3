"""`mlops manifests`: an environment's Kubernetes manifests, rendered into git for GitOps."""

from __future__ import annotations

from typing import Annotated

import typer

from mlops.cli import _ui
from mlops.cli._options import JsonOpt, RemoteOpt


def manifests(
    env: Annotated[
        str, typer.Option("--env", "-e", metavar="ENV", help="The environment (pipeline.yaml).")
    ],
    version: Annotated[
        str | None,
        typer.Option(
            "--version",
            metavar="VERSION",
            help="Render this version (default: the one the environment's stage tag names).",
        ),
    ] = None,
    commit: Annotated[
        bool, typer.Option("--commit", help="Commit deploy/k8s/ENV/ when it changed.")
    ] = False,
    push: Annotated[
        bool,
        typer.Option(
            "--push",
            help="Push that commit to the current branch (or to kubernetes.config_repo).",
        ),
    ] = False,
    remote: RemoteOpt = "origin",
    json: JsonOpt = False,
) -> None:
    """Render the Kubernetes manifests of an environment into deploy/k8s/ENV/ (kustomize).

    From `environments.ENV.kubernetes` in pipeline.yaml: a Deployment whose pods run
    `mlops serve --target URL` (URL: `kubernetes.target`, else the environment's `target:`,
    which MLOPS_TARGET_<ENV> or MLOPS_TARGETS override when set) (readiness /ready, liveness
    /health, credentials from a Secret), a Service, and a HorizontalPodAutoscaler when
    `autoscale:` is set. The version is a pod annotation: a new version is a rollout. Argo CD
    or Flux applies the directory from git; `mlops deploy` renders it for you when the
    environment has `kubernetes:`. With `kubernetes.config_repo`, --push commits the files to
    that separate repository (the one Argo CD or Flux watches) instead of this one.

    Example: mlops manifests --env production --commit
    """
    from mlops import api

    _ui.set_json(json)
    result = api.manifests(".", env, version=version, commit=commit, push=push, remote=remote)
    if json:
        _ui.print_json(result.to_dict())
        return
    changed = ", ".join(result.changed) if result.changed else "unchanged"
    _ui.out().print(f"{result.directory}: {changed}", markup=False)
    if result.pushed:
        _ui.out().print(f"pushed to {result.pushed}", markup=False)


def register(app: typer.Typer) -> None:
    """Add `mlops manifests` to the app."""
    app.command("manifests")(manifests)

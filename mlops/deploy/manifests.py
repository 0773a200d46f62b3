"""`mlops manifests`: an environment's Kubernetes manifests rendered into git (GitOps).

The version in the manifests is the one given, else the one the environment's stage tag
names (what `mlops deploy` last deployed there). With `commit`, the directory is committed on
its own (no other staged change rides along); with `push`, that commit is pushed to the
current branch, where Argo CD or Flux picks it up.
"""

from __future__ import annotations

import os
from pathlib import Path

from mlops.adapters import git
from mlops.config import load_project
from mlops.deploy.k8s import MANIFEST_DIR, Rendered, render, write
from mlops.errors import GitStateError, UsageError


def has_kubernetes(root: Path | str, env: str) -> bool:
    """Whether `env` declares `kubernetes:` in pipeline.yaml."""
    envs = load_project(root).pipeline.environments
    return env in envs and envs[env].kubernetes is not None


def render_manifests(
    root: Path | str,
    env: str,
    *,
    version: str | None = None,
    commit: bool = False,
    push: bool = False,
    remote: str = "origin",
) -> Rendered:
    """Render `env`'s kustomize directory under deploy/k8s/ENV/ (see the module docstring)."""
    project = load_project(root)
    envs = project.pipeline.environments
    if env not in envs:
        raise UsageError(
            f"unknown environment {env!r}",
            f"pipeline.yaml defines: {', '.join(envs) or 'none'} (under `environments:`).",
        )
    spec = envs[env].kubernetes
    if spec is None:
        raise UsageError(
            f"environments.{env} has no `kubernetes:` section",
            f"Add environments.{env}.kubernetes: {{namespace: ..., image: ...}} to pipeline.yaml "
            "(docs/scaling.md, 'Kubernetes').",
        )
    name = project.pipeline.model.name
    if version is None:
        from mlops.registry.desired import current_version

        holder = current_version(project.root, env, name)
        if holder is None:
            raise GitStateError(
                f"nothing is deployed to {env} yet, so there is no version to render",
                f"Deploy first (`mlops deploy --env {env}`), or give --version.",
            )
        version = holder.version
    files = render(env, name, version, spec, envs[env].target)
    result = write(project.root, env, files)
    if commit and result.changed and git.toplevel(project.root) is not None:
        rel = f"{MANIFEST_DIR}/{env}"
        git.run(project.root, "add", "-A", "--", rel)
        message = f"deploy/k8s/{env}: {name} {version}\n\nRendered by `mlops manifests`."
        git.run(project.root, "commit", "-q", "-F", "-", "--", rel, input=message)
        if push:
            branch = git.branch(project.root) or os.environ.get("CI_COMMIT_BRANCH")
            if not branch:
                raise GitStateError(
                    "the manifests were committed on a detached HEAD: no branch to push to",
                    "Check out the branch Argo CD or Flux follows, or set CI_COMMIT_BRANCH.",
                )
            refspec = [f"HEAD:refs/heads/{branch}"]
            # ci.skip: the commit only changes manifests, no pipeline needs to run for it
            pushed = git.push(project.root, remote, refspec, options=["ci.skip"])
            if pushed.code != 0 and "push options" in pushed.err:
                pushed = git.push(project.root, remote, refspec)  # a remote without options
            if pushed.code != 0:
                raise GitStateError(
                    f"the manifests commit could not be pushed to {remote}: "
                    f"{git.redact(pushed.err.strip())[:300]}",
                    f"Pull, render again (`mlops manifests --env {env} --commit`), and push.",
                )
    return result

"""`mlops manifests`: an environment's Kubernetes manifests rendered into git (GitOps).

The version in the manifests is the one given, else the one the environment's stage tag
names (what `mlops deploy` last deployed there). With `commit`, the directory is committed on
its own (no other staged change rides along); with `push`, that commit is pushed to the
current branch, where Argo CD or Flux picks it up. When the environment names a separate
config repository (`kubernetes.config_repo`), nothing is committed here: `push` commits the
files at its path on its branch's tip and pushes there.
"""

from __future__ import annotations

import os
from pathlib import Path

from mlops.adapters import git
from mlops.config import load_project
from mlops.config.models import ConfigRepository
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
    if spec.config_repo is not None:  # Argo CD or Flux watches another repository
        if push:
            path = spec.config_repo.path or f"{name}/{env}"
            result.pushed = push_to_config_repo(
                project.root, spec.config_repo, path, result, message_for(env, name, version)
            )
        return result
    if commit and result.changed and git.toplevel(project.root) is not None:
        rel = f"{MANIFEST_DIR}/{env}"
        git.run(project.root, "add", "-A", "--", rel)
        message = message_for(env, name, version)
        git.run(project.root, "commit", "-q", "-F", "-", "--", rel, input=message)
    if push and git.toplevel(project.root) is not None:
        _push(project.root, env, result, message_for(env, name, version), remote)
    return result


def push_to_config_repo(
    root: Path, repo: ConfigRepository, path: str, result: Rendered, message: str
) -> str:
    """Commit the rendered files at `path` on the config repository's branch tip and push;
    returns `URL BRANCH:PATH @ COMMIT`. Files this render no longer has are removed there;
    an unchanged directory makes no commit. The project's own branch is not touched (the
    commit is built in this repository's object store on a temporary index)."""
    where = f"{git.redact(repo.url)} {repo.branch}"
    for _attempt in range(3):  # someone else may push between our fetch and our push
        fetched = git.run(root, "fetch", "-q", "--", repo.url, f"refs/heads/{repo.branch}",
                          check=False)  # fmt: skip
        if fetched.code != 0:
            raise GitStateError(
                f"cannot fetch branch {repo.branch} of the config repository {where}: "
                f"{git.redact(fetched.err.strip())[:300]}",
                "Check kubernetes.config_repo (the branch must exist: push a first commit) "
                "and that git can reach it with the job's credentials (MLOPS_GIT_TOKEN).",
            )
        tip = git.rev_parse(root, "FETCH_HEAD") or ""
        files: dict[str, str | None] = {f"{path}/{n}": t for n, t in result.files.items()}
        listed = git.run(root, "ls-tree", "--name-only", f"{tip}:{path}", check=False)
        for n in listed.out.split() if listed.code == 0 else []:
            files.setdefault(f"{path}/{n}", None)  # a file this render no longer has
        new = git.commit_paths(root, tip, files, message)
        if new == tip:
            return f"{where}:{path} @ {tip[:12]} (unchanged)"
        pushed = git.push(root, repo.url, [f"{new}:refs/heads/{repo.branch}"])
        if pushed.code == 0:
            return f"{where}:{path} @ {new[:12]}"
    raise GitStateError(
        f"the manifests commit could not be pushed to {where}: "
        f"{git.redact(pushed.err.strip())[:300]}",
        "Render and push again (`mlops manifests --env ENV --push`).",
    )


def message_for(env: str, name: str, version: str) -> str:
    """The commit message of a manifests commit."""
    return f"deploy/k8s/{env}: {name} {version}\n\nRendered by `mlops manifests`."


def _push(root: Path, env: str, result: Rendered, message: str, remote: str) -> None:
    """Put the rendered directory on the remote branch: HEAD when it is the remote tip plus
    manifests commits, else a commit of just these files on top of that tip (a CI job checks
    out the pipeline's commit, which an earlier job's push may have left behind; other local
    commits are never pushed). Pushed with `ci.skip`."""
    branch = git.branch(root) or os.environ.get("CI_COMMIT_BRANCH")
    if not branch:
        raise GitStateError(
            "the manifests were committed on a detached HEAD: no branch to push to",
            "Check out the branch Argo CD or Flux follows, or set CI_COMMIT_BRANCH.",
        )
    rel = f"{MANIFEST_DIR}/{env}"
    for _attempt in range(3):  # another job may push between our fetch and our push
        fetched = git.run(root, "fetch", "-q", remote, f"refs/heads/{branch}", check=False)
        tip = git.rev_parse(root, "FETCH_HEAD") if fetched.code == 0 else None
        head = git.head(root) or ""
        if _only_manifests_ahead(root, tip, head, rel):
            new = head  # HEAD is the remote tip plus manifests commits: keep history linear
        else:  # never push other local commits: the manifests alone, on the remote's tip
            base = tip or head
            files: dict[str, str | None] = {f"{rel}/{n}": t for n, t in result.files.items()}
            listed = git.run(root, "ls-tree", "--name-only", f"{base}:{rel}", check=False)
            for n in listed.out.split() if listed.code == 0 else []:
                files.setdefault(f"{rel}/{n}", None)  # a file this render no longer has
            new = git.commit_paths(root, base, files, message)
            if new == tip:
                return  # the branch already has these manifests
        refspec = [f"{new}:refs/heads/{branch}"]
        # ci.skip: the commit only changes manifests, no pipeline needs to run for it
        pushed = git.push(root, remote, refspec, options=["ci.skip"])
        if pushed.code != 0 and "push options" in pushed.err:
            pushed = git.push(root, remote, refspec)  # a remote without push options
        if pushed.code == 0:
            return
    raise GitStateError(
        f"the manifests commit could not be pushed to {remote}: "
        f"{git.redact(pushed.err.strip())[:300]}",
        f"Pull, render again (`mlops manifests --env {env} --commit --push`).",
    )


def _only_manifests_ahead(root: Path, tip: str | None, head: str, rel: str) -> bool:
    """Whether HEAD is `tip` plus commits that change nothing but `rel`."""
    if tip is None or not head:
        return False
    if git.run(root, "merge-base", "--is-ancestor", tip, head, check=False).code != 0:
        return False
    changed = git.run(root, "diff", "--name-only", tip, head, check=False).out.split()
    return all(p.startswith(rel + "/") for p in changed)

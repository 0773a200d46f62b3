"""`mlops promote`, `rollback`, `deprecate`, `deregister`: registry changes through git.

- A pinned environment (`pin: deploy/<env>.yaml`) changes through a merge request: a branch
  `promote/<name>-<env>-<version>` with one commit (on the remote's default branch) that rewrites
  the pin file, pushed with GitLab's push options that open the merge request. The work tree,
  index and HEAD are never touched (the commit is built on a temporary index).
- Any other environment gets an annotated stage tag `NAME#ENV#N` (pushed with `push=True`).
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlops.adapters import git, lock
from mlops.config import Project, load_project
from mlops.config.models import DeployPin
from mlops.errors import GitStateError
from mlops.registry.desired import (
    ROLLBACK_TRAILER,
    environment,
    parse_pin,
    pin_text,
    previous_version,
)
from mlops.registry.state import Artifact, Version, read_registry
from mlops.registry.tags import Action, format_message, format_tag
from mlops.registry.write import (
    MR_URL_RE,
    free_tag_name,
    push_refs,
    rejections,
    require_remote,
    sync_tags,
    write_stage_tag,
    write_tag,
)


@dataclass
class PromoteResult:
    name: str
    version: str
    env: str
    mode: str  # "tag" | "merge_request"
    commit: str  # the version's commit
    replaces: str | None = None
    rollback_from: str | None = None
    tag: str | None = None
    branch: str | None = None
    branch_commit: str | None = None
    target_branch: str | None = None
    pushed: bool = False
    remote: str | None = None
    push_options: bool | None = None  # the remote took the merge-request options
    merge_request_url: str | None = None
    title: str = ""
    description: str = ""
    next_step: str = ""
    notes: list[str] = field(default_factory=list)  # e.g. stage tags a killed run left local

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _active_version(art: Artifact, version: str) -> Version:
    v = art.version(version)
    if v is None or not v.registered:
        known = ", ".join(x.version for x in art.registered_versions()) or "none"
        raise GitStateError(
            f"{art.name} {version} is not registered (registered versions: {known})",
            "Promote a registered version (`mlops registry show` lists them), or register one.",
        )
    if not v.active:
        raise GitStateError(
            f"{art.name} {version} was deregistered and cannot be promoted",
            "Promote another version (`mlops registry show` lists the active ones).",
        )
    return v


def _registration_refs(v: Version) -> list[str]:
    """The version's registration tag: pushed along, so the remote knows what a stage names."""
    return [f"refs/tags/{v.registration.tag}"] if v.registration else []


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def describe_change(
    name: str, env: str, new: Version, old: Version | None, rollback: bool
) -> tuple[str, str]:
    """(title, one-line HTML description) of a promotion: the metrics of both versions.

    Push options cannot hold line breaks, so the description is a single line of HTML (a
    table), which GitLab renders in the merge request.
    """
    if rollback and old is not None:
        title = f"Roll back {env} to {name} {new.version} (from {old.version})"
    else:
        title = f"Promote {name} {new.version} to {env}"
    head = (
        f"<p>{'Rolls back' if rollback else 'Promotes'} <b>{html.escape(name)}</b> to "
        f"<b>{new.version}</b> (commit <code>{new.commit[:12]}</code>) in <b>{env}</b>"
        + (f", replacing <b>{old.version}</b>." if old else " (first version there).")
        + "</p>"
    )
    keys = list(dict.fromkeys([*new.metrics, *(old.metrics if old else {})]))
    rows = []
    for k in keys:
        a = old.metrics.get(k) if old else None
        b = new.metrics.get(k)
        delta = f"{b - a:+.4g}" if a is not None and b is not None else "-"
        rows.append(f"<tr><td>{html.escape(k)}</td><td>{_fmt(a)}</td><td>{_fmt(b)}</td>"
                    f"<td>{delta}</td></tr>")  # fmt: skip
    table = ""
    if rows:
        table = (
            f"<table><tr><th>metric</th><th>{old.version if old else 'current'}</th>"
            f"<th>{new.version}</th><th>change</th></tr>{''.join(rows)}</table>"
        )
    blessed = {True: "passed its quality gates", False: "did NOT pass its quality gates",
               None: "has no recorded gate verdict"}[new.blessed]  # fmt: skip
    tail = f"<p>{new.version} {blessed}. Merging updates the pin; CI then deploys it.</p>"
    return title, head + table + tail


@lock.locked
def promote(
    root: Path | str,
    name: str,
    version: str,
    env: str,
    *,
    push: bool = False,
    remote: str = "origin",
    force: bool = False,
    rollback_from: str | None = None,
    project: Project | None = None,
) -> PromoteResult:
    """Promote `name` `version` to `env` (see the module docstring for how)."""
    project = project or load_project(root)
    spec = environment(project, env)
    root = project.root
    pinned = spec.pin is not None
    if pinned or push:
        why = "a pinned environment changes through a merge request" if pinned else "--push"
        require_remote(root, remote, why)
        sync_tags(root, remote)
    from mlops.registry.pending import push_pending_stage_tags

    pending = push_pending_stage_tags(root, name, remote) if (pinned or push) else []
    registry = read_registry(root)
    art = registry.artifact(name)
    new = _active_version(art, version)
    if new.blessed is False and not force:
        raise GitStateError(
            f"{name} {version} is registered as not blessed (it failed its quality gates)",
            "Promote a blessed version, or use --force if you really mean it.",
        )
    if pinned:
        pinned_result = _promote_pinned(project, art, new, env, remote, rollback_from)
        pinned_result.notes = pending + pinned_result.notes
        return pinned_result
    holder = art.in_stage(env)
    if holder is not None and holder.version == version:
        raise GitStateError(
            f"{name} {version} is already in {env} (tag {holder.tag}); nothing to promote",
            f"`mlops registry show {name}` lists the versions.",
        )
    old = art.version(holder.version) if holder else None
    headline = f"Assigning stage {env} to artifact {name} version {version}"
    fields = {"replaces": old.version if old else "", "rollback-from": rollback_from or ""}
    written = write_stage_tag(
        root,
        name,
        env,
        new.commit,
        format_message(headline, fields),
        push=push,
        remote=remote,
        registry=None if push else registry,
        also_push=_registration_refs(new),
    )
    title, description = describe_change(name, env, new, old, rollback_from is not None)
    result = PromoteResult(
        name,
        version,
        env,
        "tag",
        new.commit,
        replaces=old.version if old else None,
        rollback_from=rollback_from,
        tag=written.tag,
        pushed=written.pushed,
        remote=written.remote,
        title=title,
        description=description,
        notes=pending,
    )
    to_push = [written.tag, format_tag(Action.RESERVE, name, counter=written.counter)]
    if new.registration:
        to_push.append(new.registration.tag)
    result.next_step = (
        f"Pushed {written.tag}; CI deploys {env} from it."
        if written.pushed
        else f"Share it: `git push {remote} {' '.join(to_push)}` (or promote with --push)."
    )
    return result


def _promote_pinned(
    project: Project,
    art: Artifact,
    new: Version,
    env: str,
    remote: str,
    rollback_from: str | None,
) -> PromoteResult:
    root = project.root
    spec = project.pipeline.environments[env]
    path = spec.pin or ""
    target = git.remote_default_branch(root, remote)
    if target is None:
        raise GitStateError(
            f"cannot tell the default branch of {remote!r} (it has no HEAD branch)",
            f"Push the default branch first (`git push -u {remote} main`).",
        )
    fetched = git.fetch(root, remote, f"+refs/heads/{target}:refs/remotes/{remote}/{target}")
    base = git.rev_parse(root, f"refs/remotes/{remote}/{target}")
    if fetched.code != 0 or base is None:
        raise GitStateError(
            f"could not fetch {target!r} from {remote!r}: {git.redact(fetched.err.strip())}",
            "Check the remote is reachable, then run again.",
        )
    old_text = git.show_file(root, base, path)
    old_pin = parse_pin(old_text, f"{path} on {target}") if old_text else None
    if old_pin is not None and old_pin.model == art.name and old_pin.version == new.version:
        raise GitStateError(
            f"{path} on {target} already pins {art.name} {new.version}; nothing to promote",
            "Deploy it (CI does on merge), or promote another version.",
        )
    old = art.version(old_pin.version) if old_pin and old_pin.model == art.name else None
    rollback = rollback_from is not None
    title, description = describe_change(art.name, env, new, old, rollback)
    body = [
        f"{env} should run {art.name} {new.version} (commit {new.commit[:12]})"
        + (f" instead of {old_pin.version}." if old_pin else "."),
    ]
    if new.metrics:
        body.append("Metrics: " + " ".join(f"{k}={v:.4g}" for k, v in new.metrics.items()))
    trailers = f"\n\n{ROLLBACK_TRAILER}: {rollback_from}" if rollback else ""
    message = f"{title}\n\n" + "\n".join(body) + trailers + "\n"
    pin = DeployPin(model=art.name, version=new.version)
    content = pin_text(pin, env, old_text)
    branch = f"promote/{art.name}-{env}-{new.version}"
    ref = f"refs/heads/{branch}"
    if git.rev_parse(root, ref) is not None:
        raise GitStateError(
            f"a local branch {branch!r} already exists",
            f"Delete it (`git branch -D {branch}`) if it is stale, then run again.",
        )
    commit = git.commit_file(root, base, path, content, message)
    git.update_ref(root, ref, commit, "")
    options = [
        "merge_request.create",
        f"merge_request.target={target}",
        f"merge_request.title={title}",
        f"merge_request.description={description}",
        "merge_request.remove_source_branch",
    ]
    try:
        res, accepted = push_refs(root, remote, [ref, *_registration_refs(new)], options)
        if res.code != 0:
            reason = "; ".join(rejections(res))
            raise GitStateError(
                f"{remote!r} rejected branch {branch!r} ({reason}); no branch was left behind",
                "A promotion of the same version may already be open (see the merge requests); "
                "otherwise run the command again.",
            )
    finally:
        git.delete_ref(root, ref)  # the branch lives on the remote; keep nothing locally
    url = MR_URL_RE.search(res.err or "")
    result = PromoteResult(
        art.name,
        new.version,
        env,
        "merge_request",
        new.commit,
        replaces=old_pin.version if old_pin else None,
        rollback_from=rollback_from,
        branch=branch,
        branch_commit=commit,
        target_branch=target,
        pushed=True,
        remote=remote,
        push_options=accepted,
        merge_request_url=url.group(0) if url else None,
        title=title,
        description=description,
    )
    if accepted:
        link = f" {result.merge_request_url}" if result.merge_request_url else ""
        result.next_step = (
            f"Review and merge the merge request{link} ({branch} -> {target}); "
            f"CI then deploys {env}."
        )
    else:
        result.next_step = (
            f"The remote does not take push options (not GitLab?), so no merge request was "
            f"opened: open one from {branch} into {target} (title: {title!r}), then merge it."
        )
    return result


@lock.locked
def rollback(
    root: Path | str,
    env: str,
    name: str | None = None,
    *,
    push: bool = False,
    remote: str = "origin",
) -> PromoteResult:
    """Promote the version `env` ran before the current one, the way `promote` would."""
    project = load_project(root)
    spec = environment(project, env)
    name = name or project.pipeline.model.name
    if spec.pin is not None or push:
        require_remote(project.root, remote, "rolling back pushes the change")
        sync_tags(project.root, remote)
    prev = previous_version(project.root, env, name, project=project)
    return promote(
        project.root,
        name,
        prev.version,
        env,
        push=push,
        remote=remote,
        force=True,
        rollback_from=prev.current,
        project=project,
    )


@dataclass
class TagResult:
    name: str
    tag: str
    commit: str
    version: str | None = None
    pushed: bool = False
    remote: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@lock.locked
def deregister(
    root: Path | str,
    name: str,
    version: str,
    *,
    push: bool = False,
    remote: str = "origin",
    message: str | None = None,
) -> TagResult:
    """Write `NAME@vX.Y.Z!`: the version stays in history but is no longer active."""
    if push:
        require_remote(root, remote, "--push needs one")
        sync_tags(root, remote)
    registry = read_registry(root)
    art = registry.artifact(name)
    v = _active_version(art, version)
    tag = free_tag_name(registry, format_tag(Action.DEREGISTER, name, version=version), name)
    text = format_message(
        f"Deregistering artifact {name} version {version}", {"note": message or ""}
    )
    written = write_tag(root, tag, v.commit, text, push=push, remote=remote)
    return TagResult(name, tag, v.commit, version, written.pushed, written.remote)


@lock.locked
def deprecate(
    root: Path | str,
    name: str,
    *,
    push: bool = False,
    remote: str = "origin",
    message: str | None = None,
) -> TagResult:
    """Write `NAME@deprecated`: the artifact leaves `gto show` (its history stays)."""
    if push:
        require_remote(root, remote, "--push needs one")
        sync_tags(root, remote)
    registry = read_registry(root)
    art = registry.artifact(name)
    if not art.active:
        raise GitStateError(
            f"{name} is already deprecated", "Register a new version to bring it back."
        )
    commit = art.events[-1].commit  # GTO's choice: the commit of the latest event
    tag = free_tag_name(registry, format_tag(Action.DEPRECATE, name), name)
    text = format_message(f"Deprecating artifact '{name}'", {"note": message or ""})
    written = write_tag(root, tag, commit, text, push=push, remote=remote)
    return TagResult(name, tag, commit, None, written.pushed, written.remote)

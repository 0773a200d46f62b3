"""The first step of `mlops deploy`: which registered version goes into an environment, and why.

The environment's desired version (`track: latest`, or the pin file), or `--version`, a pushed
stage tag (`--from-tag`), or the previous version (`--rollback`). An unblessed version is
refused unless `force`.
"""

from __future__ import annotations

from dataclasses import dataclass

from mlops.config import Project
from mlops.errors import GateFailedError, GitStateError, UsageError
from mlops.registry.desired import desired_version, previous_version
from mlops.registry.state import Registry, Version
from mlops.registry.tags import Action, parse_tag


@dataclass
class Resolved:
    """The version a deploy puts in place, and why."""

    version: str
    commit: str
    registration_tag: str | None
    source: str
    blessed: bool | None
    failed_gates: str = ""
    rollback_from: str | None = None
    from_tag: str | None = None


def _registered(registry: Registry, name: str, version: str) -> Version:
    art = registry.artifact(name)
    v = art.version(version)
    if v is None or not v.registered:
        known = ", ".join(x.version for x in art.registered_versions()) or "none"
        raise GitStateError(
            f"{name} {version} is not registered (registered: {known})",
            "Deploy a registered version (`mlops registry show` lists them); if it was "
            "registered elsewhere, fetch the tags first (`git fetch --tags`).",
        )
    if not v.active:
        raise GitStateError(
            f"{name} {version} was deregistered and is not deployed any more",
            "Deploy another version (`mlops registry show` lists the active ones).",
        )
    return v


def _from_tag(registry: Registry, name: str, env: str, tag: str, force: bool) -> Version:
    parsed = parse_tag(tag)
    if parsed is None or parsed.action != Action.ASSIGN or parsed.name != name:
        raise UsageError(
            f"{tag!r} is not a stage tag of {name} (NAME#STAGE#N)",
            f"Give a tag such as {name}#{env}#3 (CI passes $CI_COMMIT_TAG).",
        )
    if parsed.stage != env:
        raise UsageError(
            f"{tag} assigns stage {parsed.stage!r}, not {env!r}",
            f"Deploy it with `mlops deploy --env {parsed.stage} --from-tag '{tag}'`.",
        )
    art = registry.artifact(name)
    event = next((e for e in art.events if e.tag == tag), None)
    if event is None or event.version is None:
        raise GitStateError(
            f"tag {tag} is not in this repository (or names no registered version)",
            "Fetch the tags (`git fetch --tags`; CI needs GIT_DEPTH: 0), then run again.",
        )
    holder = art.in_stage(env)
    if holder is not None and holder.tag != tag and holder.version != event.version and not force:
        raise GitStateError(
            f"{tag} is no longer {env}'s latest assignment: {holder.tag} put {holder.version} "
            "there since",
            f"Deploy what {env} should run now (`mlops deploy --env {env}`), or use --force "
            "to deploy this older assignment anyway.",
        )
    return _registered(registry, name, event.version)


def resolve(
    project: Project,
    registry: Registry,
    env: str,
    *,
    version: str | None = None,
    from_tag: str | None = None,
    rollback: bool = False,
    force: bool = False,
) -> Resolved:
    """The version to deploy to `env` (see the module docstring), not yet checked for gates."""
    if sum(x is not None and x is not False for x in (version, from_tag, rollback)) > 1:
        raise UsageError("give at most one of --version, --from-tag and --rollback")
    name = project.pipeline.model.name
    rollback_from = None
    if rollback:
        prev = previous_version(project.root, env, name, project=project, registry=registry)
        v = _registered(registry, name, prev.version)
        source, rollback_from = f"rollback from {prev.current} ({prev.source})", prev.current
    elif from_tag is not None:
        v = _from_tag(registry, name, env, from_tag, force)
        source = f"stage tag {from_tag}"
    elif version is not None:
        v = _registered(registry, name, version)
        source = "--version"
    else:
        desired = desired_version(project.root, env, name, project=project, registry=registry)
        if desired.version is None:
            hint = (
                f"Pin a registered version (`mlops promote {name} VERSION --to {env}` opens the "
                "merge request), or deploy one explicitly with --version."
                if desired.mode == "pin"
                else "Register a blessed version first (`mlops register`)."
            )
            raise GitStateError(f"nothing to deploy to {env}: {desired.source}", hint)
        v = _registered(registry, name, desired.version)
        source = desired.source
    reg = v.registration
    return Resolved(
        version=v.version,
        commit=v.commit,
        registration_tag=reg.tag if reg else None,
        source=source,
        blessed=v.blessed,
        failed_gates=v.fields.get("forced", ""),
        rollback_from=rollback_from,
        from_tag=from_tag,
    )


def _refuse_unblessed(name: str, r: Resolved, where: str) -> None:
    detail = f" ({r.failed_gates})" if r.failed_gates and r.failed_gates != "unblessed" else ""
    raise GateFailedError(
        f"{name} {r.version} is not blessed: it failed its quality gates{detail} ({where}); "
        "nothing was deployed",
        "Deploy a blessed version, or use --force if you really mean to deploy this one.",
    )

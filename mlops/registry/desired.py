"""Environments: their desired version (tracked latest, or a pin file), current and previous one.

- An environment with `track: latest` should run the latest registered version that passed its
  gates (not marked `blessed: false`), unless a stage tag assigned it a version *after* that
  version was registered (an explicit promotion or rollback), which then wins until the next
  registration.
- An environment with `pin: deploy/<env>.yaml` should run the version that file names; the file
  changes only through merge requests (`mlops promote`).
- The version *in* an environment is the registry's stage of the same name (`NAME#ENV#N` tags).
- The previous version (for a rollback) comes from the stage's assignments; for a pinned
  environment that has none yet, from the pin file's git history.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from mlops.adapters import git
from mlops.config import Project, limits, load_project
from mlops.config.check import _issues_from
from mlops.config.models import DeployPin, Environment
from mlops.config.yamlfile import YamlDoc, dump_yaml
from mlops.errors import ConfigError, GitStateError
from mlops.registry.state import Registry, StageHolder, Version, read_registry

ROLLBACK_TRAILER = "Mlops-Rollback-From"


def environment(project: Project, env: str) -> Environment:
    """The environment `env` of pipeline.yaml; `GitStateError` (exit 5) when it has none."""
    envs = project.pipeline.environments
    if env not in envs:
        known = ", ".join(envs) or "none"
        raise GitStateError(
            f"unknown environment {env!r} (pipeline.yaml declares: {known})",
            "Use one of those, or declare it under `environments:` in pipeline.yaml.",
        )
    return envs[env]


def parse_pin(text: str, display: str) -> DeployPin:
    """Validate the text of a pin file; `ConfigError` (exit 2) with key path and line."""
    import yaml

    data, node = limits.compose_checked(text, display)
    lines: dict[tuple, int] = {}
    if isinstance(node, yaml.MappingNode):
        lines[()] = node.start_mark.line + 1
        for key, _ in node.value:
            lines[(key.value,)] = key.start_mark.line + 1
    doc = YamlDoc(display, data, lines, [])
    try:
        return DeployPin.model_validate(data if data is not None else {})
    except ValidationError as exc:
        raise ConfigError(
            _issues_from(exc, doc),
            f"{display} must hold `model: NAME` and `version: vX.Y.Z`; fix it (or run "
            "`mlops promote NAME VERSION --to ENV`, which writes it).",
        ) from None


def read_pin(root: Path, path: str, rev: str | None = None) -> DeployPin | None:
    """The pin file in the work tree (or at `rev`); None when it does not exist."""
    if rev is None:
        file = root / path
        if not file.is_file():
            return None
        text = file.read_text(encoding="utf-8")
    else:
        found = git.show_file(root, rev, path)
        if found is None:
            return None
        text = found
    return parse_pin(text, path if rev is None else f"{path} at {rev[:12]}")


def pin_text(pin: DeployPin, env: str, previous: str | None = None) -> str:
    """The pin file's text for `pin`, keeping the leading comments of its `previous` text."""
    head: list[str] = []
    for line in (previous or "").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            break
        head.append(line)
    if not any(line.strip() for line in head):
        head = [
            f"# Desired state of the {env} environment: the model version it should run.",
            f"# Change it through a merge request: `mlops promote {pin.model} VERSION --to {env}`.",
        ]
    return (
        "\n".join(head).rstrip("\n")
        + "\n"
        + dump_yaml({"model": pin.model, "version": pin.version})
    )


@dataclass
class Desired:
    """What an environment should run, and why."""

    env: str
    model: str
    mode: str  # "track" | "pin"
    version: str | None
    commit: str | None = None
    tag: str | None = None  # the registration tag
    source: str = ""  # why this version: "latest blessed version", "deploy/x.yaml", a stage tag
    current: str | None = None  # the version the stage holds now
    current_tag: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _check_registered(registry: Registry, name: str, version: str, where: str) -> Version:
    art = registry.artifact(name)
    v = art.version(version)
    if v is None or not v.registered:
        known = ", ".join(x.version for x in art.registered_versions()) or "none"
        raise GitStateError(
            f"{where} names {name} {version}, which is not registered (registered: {known})",
            "Register it (`mlops register --version ...`) or pin a registered version.",
        )
    if not v.active:
        raise GitStateError(
            f"{where} names {name} {version}, which was deregistered",
            "Pin another version: `mlops promote NAME VERSION --to ENV`.",
        )
    return v


def desired_version(
    root: Path | str,
    env: str,
    name: str | None = None,
    *,
    project: Project | None = None,
    registry: Registry | None = None,
) -> Desired:
    """The version environment `env` should run (see the module docstring)."""
    project = project or load_project(root)
    spec = environment(project, env)
    name = name or project.pipeline.model.name
    registry = registry or read_registry(project.root)
    art = registry.get(name)
    holder = art.in_stage(env) if art else None
    current = holder.version if holder else None
    current_tag = holder.tag if holder else None
    if spec.pin is not None:
        pin = read_pin(project.root, spec.pin)
        if pin is None:
            return Desired(
                env,
                name,
                "pin",
                None,
                source=f"{spec.pin} (missing)",
                current=current,
                current_tag=current_tag,
            )
        if pin.model != name:
            raise GitStateError(
                f"{spec.pin} pins model {pin.model!r}, but this project's model is {name!r}",
                f"Fix `model:` in {spec.pin}.",
            )
        v = _check_registered(registry, name, pin.version, spec.pin)
        tag = v.registration.tag if v.registration else None
        return Desired(env, name, "pin", v.version, v.commit, tag, spec.pin, current, current_tag)
    latest = art.latest(blessed_only=True) if art else None
    registered_at = latest.registered_at if latest else None
    if holder is not None and (registered_at is None or holder.assigned_at >= registered_at):
        held = art.version(holder.version) if art else None
        tag = held.registration.tag if held and held.registration else None
        return Desired(
            env,
            name,
            "track",
            holder.version,
            holder.commit,
            tag,
            f"stage tag {holder.tag}",
            current,
            current_tag,
        )
    if latest is None:
        return Desired(
            env,
            name,
            "track",
            None,
            source="no blessed version registered yet",
            current=current,
            current_tag=current_tag,
        )
    tag = latest.registration.tag if latest.registration else None
    return Desired(
        env,
        name,
        "track",
        latest.version,
        latest.commit,
        tag,
        "latest blessed version",
        current,
        current_tag,
    )


def current_version(
    root: Path | str, env: str, name: str | None = None, *, registry: Registry | None = None
) -> StageHolder | None:
    """The version in environment `env` now (its stage): version, commit and tag, or None."""
    registry = registry or read_registry(root)
    if name is None:
        name = load_project(root).pipeline.model.name
    art = registry.get(name)
    return art.in_stage(env) if art else None


@dataclass
class Previous:
    """The version to roll an environment back to."""

    env: str
    model: str
    current: str
    version: str
    commit: str
    source: str  # "stage tags" | the pin file's history

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def previous_version(
    root: Path | str,
    env: str,
    name: str | None = None,
    *,
    project: Project | None = None,
    registry: Registry | None = None,
    live: str | None = None,
    deployments: list[dict[str, Any]] | None = None,
) -> Previous:
    """The version `env` ran before the current one; `GitStateError` (exit 5) when none.

    Where it is found, in order: the stage tags (the assignment before the current one), the
    history of the environment's pin file; with `deployments` (the target's deployment events,
    oldest first), the event that deployed `live`. A version the environment was rolled back
    away from is never the answer (rolling back to it again would undo the rollback). With
    `live`, git's answer counts only when its current version is `live` (what a monitor sees
    running); otherwise the deployment events decide."""
    project = project or load_project(root)
    spec = environment(project, env)
    name = name or project.pipeline.model.name
    registry = registry or read_registry(project.root)
    art = registry.artifacts.get(name)
    if art is None and not (live and deployments):
        registry.artifact(name)  # raises, naming the artifacts there are
    holder = art.in_stage(env) if art else None
    prev = art.previous_in_stage(env) if art else None
    found: Previous | None = None
    if art is None:
        pass
    elif holder is not None and prev is not None:
        found = Previous(env, name, holder.version, prev.version, prev.commit, "stage tags")
    elif spec.pin is not None:
        pinned = _previous_from_pin_history(project.root, spec.pin, registry, name)
        if pinned is not None:
            current, version = pinned
            v = art.version(version)
            found = Previous(
                env, name, current, version, v.commit if v else "", f"history of {spec.pin}"
            )
    if found is not None and (live is None or found.current == live):
        return found
    if live is not None and deployments:
        earlier = previous_from_deployments(deployments, live)
        if earlier is not None:
            v = art.version(earlier) if art else None
            return Previous(env, name, live, earlier, v.commit if v else "", "deployment history")
    now = live or (holder.version if holder else "nothing")
    raise GitStateError(
        f"nothing to roll back to: {env} runs {now} and no earlier version of {name} is "
        "recorded there",
        f"Promote a version explicitly: `mlops promote {name} VERSION --to {env}`.",
    )


def previous_from_deployments(events: list[dict[str, Any]], live: str) -> str | None:
    """From deployment events (oldest first: `event`, `version`, `previous`), the version that
    ran before the latest deployment of `live`, skipping versions rolled back away from."""
    rolled_back = {
        str(e.get("previous"))
        for e in events
        if e.get("event") == "rollback" and e.get("previous") not in (None, "")
    }
    for event in reversed(events):
        if event.get("event") not in ("deploy", "rollback") or event.get("version") != live:
            continue
        before = event.get("previous")
        if before and str(before) != live and str(before) not in rolled_back:
            return str(before)
    return None


def _previous_from_pin_history(
    root: Path, path: str, registry: Registry, name: str
) -> tuple[str, str] | None:
    """(current, previous) from the commits that changed the pin file on HEAD's history."""
    art = registry.artifact(name)
    history = git.file_history(root, "HEAD", path)
    versions: list[tuple[str, str | None]] = []  # newest first: (version, rolled back from)
    for c in history:
        try:
            pin = read_pin(root, path, c.commit)
        except ConfigError:
            continue
        if pin is None or pin.model != name:
            continue
        away = None
        for line in c.subject.splitlines():  # file_history gives the whole message
            if line.startswith(f"{ROLLBACK_TRAILER}:"):
                away = line.split(":", 1)[1].strip()
        versions.append((pin.version, away))
    if not versions:
        return None
    current = versions[0][0]
    rolled_back: set[str] = set()
    seen: set[str] = {current}
    for version, away in versions:
        if away:
            rolled_back.add(away)
        if version in seen:
            continue
        seen.add(version)
        v = art.version(version)
        if version in rolled_back or v is None or not v.active:
            continue
        return current, version
    return None

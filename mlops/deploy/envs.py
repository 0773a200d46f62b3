"""`mlops envs`: what each environment runs, since when, and what it should run.

Also the deployment records of a version for `mlops lineage` (`deployment_records`, a
`mlops.registry.lineage.DeploymentReader` that `mlops.api.lineage` passes explicitly).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlops.config import Project, load_project
from mlops.deploy.integrity import git_expected, verify_tree
from mlops.deploy.remote import RemoteTarget, open_any
from mlops.deploy.storage import StorageError
from mlops.deploy.target import Target
from mlops.errors import MlopsError
from mlops.registry.desired import desired_version
from mlops.registry.state import read_registry

DEPLOY_EVENTS = ("deploy", "rollback")


@dataclass
class EnvStatus:
    """One environment: its mode, desired version, live version, and the registry's stage."""

    env: str
    model: str
    mode: str  # "track" | "pin"
    target: str
    live: str | None = None  # the version `current` points at
    since: str | None = None  # when it was deployed (UTC, ISO 8601)
    live_commit: str | None = None
    desired: str | None = None
    desired_source: str = ""
    stage: str | None = None  # the version the registry's stage tag names
    stage_tag: str | None = None
    state: str = ""  # "up to date" | "out of date" | "not deployed" | "nothing to deploy"
    # | "fails verification"
    verified: bool | None = None  # the live version's files match what git recorded for it
    last_event: dict[str, Any] | None = None
    problems: list[str] = field(default_factory=list)
    # a canary or shadow in progress (mlops.deploy.canary): mode, version, percent, stage tag
    release: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def target_path(project: Project, env: str) -> Path:
    spec = project.pipeline.environments[env]
    return (project.root / (spec.target or f".mlops/envs/{env}")).absolute()


def open_env_target(project: Project, env: str) -> Target | RemoteTarget:
    """The target of `env`: a local directory or an object-store URL."""
    spec = project.pipeline.environments[env]
    return open_any(
        spec.target or f".mlops/envs/{env}", project.root, where=f"environments.{env}.target"
    )


def verify_live(project: Project, target: Target | RemoteTarget, version: str) -> str:
    """Verify the live `version` against git (dvc.lock at its registration tag); the source.

    Raises `IntegrityError` (exit 6) when its files differ.
    """
    md5, source = git_expected(
        project.root, project.pipeline.model.name, version, project.pipeline.model.path
    )
    if isinstance(target, RemoteTarget):
        pointer = target.pointer()
        if pointer is None or pointer["version"] != version:
            return source  # it changed meanwhile: the next look verifies the new one
        if pointer["dvc_md5"] != md5:
            from mlops.deploy.integrity import IntegrityError

            raise IntegrityError(
                f"{target.root}/current says {version} is {pointer['dvc_md5'][:12]}…, {source} "
                f"says {md5[:12]}…"
            )
        target.download(version, target.scratch_dir("envs-"), pointer)
    else:
        verify_tree(target.version_dir(version), md5, source)
    return source


def _since(events: list[dict[str, Any]], version: str | None) -> dict[str, Any] | None:
    """The most recent deploy or rollback event that put `version` live."""
    for event in reversed(events):
        if event.get("event") in DEPLOY_EVENTS and event.get("version") == version:
            return event
    return None


def environments(root: Path | str = ".") -> list[EnvStatus]:
    """The status of every environment of pipeline.yaml, in its order."""
    project = load_project(root)
    registry = read_registry(project.root)
    name = project.pipeline.model.name
    art = registry.get(name)
    out = []
    for env, spec in project.pipeline.environments.items():
        target = open_env_target(project, env)
        st = EnvStatus(env, name, "pin" if spec.pin else "track", str(target.root))
        try:
            st.live = target.current_version()
            events = target.history()
        except StorageError as exc:  # cannot tell what runs: not a verification failure
            st.problems.append(exc.message)
            st.state, events = "target unreachable", []
        except MlopsError as exc:  # a pointer outside versions/
            st.problems.append(exc.message)
            st.verified, events = False, []
        st.last_event = events[-1] if events else _recorded_event(project.root, env)
        if st.live:
            deployment = target.deployment() or {}
            st.live_commit = deployment.get("commit")
            put = _since(events, st.live)
            st.since = (put or {}).get("ts") or deployment.get("deployed_at")
            try:
                verify_live(project, target, st.live)
                st.verified = True
            except StorageError as exc:
                st.problems.append(exc.message)
                st.state = "target unreachable"
            except MlopsError as exc:
                st.verified = False
                st.problems.append(f"the live version fails verification: {exc.message}")
        holder = art.in_stage(env) if art else None
        if holder is not None:
            st.stage, st.stage_tag = holder.version, holder.tag
        _release(st, target, art)
        try:
            d = desired_version(project.root, env, name, project=project, registry=registry)
            st.desired, st.desired_source = d.version, d.source
        except MlopsError as exc:
            st.problems.append(exc.message)
        if st.state == "target unreachable":
            pass
        elif st.verified is False:
            st.state = "fails verification"
        elif st.desired is None:
            st.state = "nothing to deploy" if not st.live else "live, nothing desired"
        elif st.live is None:
            st.state = "not deployed"
        else:
            st.state = "up to date" if st.live == st.desired else "out of date"
        if st.live and st.stage and st.stage != st.live:
            st.problems.append(
                f"the registry's stage tag says {st.stage} ({st.stage_tag}), the target runs "
                f"{st.live}: deploy again to reconcile"
            )
        out.append(st)
    return out


def _release(st: EnvStatus, target: Target | RemoteTarget, art: Any) -> None:
    """The canary or shadow release in progress in the target, with its stage tag."""
    from mlops.deploy.canary import read_record, stage_of

    try:
        record = read_record(target)
    except MlopsError as exc:
        st.problems.append(exc.message)
        return
    if record is None:
        return
    stage = stage_of(st.env, record["mode"])
    holder = art.in_stage(stage) if art else None
    st.release = {
        "mode": record["mode"],
        "version": record["version"],
        "percent": record["percent"],
        "stage": stage,
        "stage_tag": holder.tag if holder else None,
    }


def deployment_records(root: Path, name: str, version: str) -> list[dict[str, Any]]:
    """Every recorded deployment of `name` `version` in this project's targets, oldest first."""
    try:
        project = load_project(root)
    except MlopsError:
        return []
    if project.pipeline.model.name != name:
        return []
    out = []
    for env in project.pipeline.environments:
        try:
            target = open_env_target(project, env)
            live = target.current_version()
            events = target.history()
        except MlopsError:
            continue
        for event in events:
            if event.get("event") in DEPLOY_EVENTS and event.get("version") == version:
                out.append(
                    {
                        "env": env,
                        "version": version,
                        "at": event.get("ts"),
                        "event": event.get("event"),
                        "tag": event.get("tag"),
                        "previous": event.get("previous"),
                        "live": live == version,
                        "target": str(target.root),
                    }
                )
    out += _recorded(project.root, name, version, {str(e["env"]) for e in out})
    return sorted(out, key=lambda e: e.get("at") or "")


def _recorded_event(root: Path, env: str) -> dict[str, Any] | None:
    """The last deployment of `env` the run records know (made elsewhere, e.g. by CI)."""
    from mlops.deploy.records import iso_utc, recorded_deployments

    found = recorded_deployments(root, env)
    if not found:
        return None
    last = found[-1]
    return {
        "event": last.kind,
        "version": last.extra.get("version"),
        "previous": last.extra.get("previous"),
        "tag": last.extra.get("stage_tag"),
        "ts": iso_utc(last.started),
        "source": f"run record {last.id}",
    }


def _recorded(root: Path, name: str, version: str, known_envs: set[str]) -> list[dict[str, Any]]:
    """Deployments of `version` in the run records, for environments whose target here has
    none (the target lives on CI's runner or a teammate's machine)."""
    from mlops.deploy.records import iso_utc, recorded_deployments

    return [
        {
            "env": r.extra.get("env"),
            "version": version,
            "at": iso_utc(r.started),
            "event": r.kind,
            "tag": r.extra.get("stage_tag"),
            "previous": r.extra.get("previous"),
            "live": None,
            "target": f"run record {r.id}",
        }
        for r in recorded_deployments(root)
        if r.extra.get("name") == name
        and r.extra.get("version") == version
        and r.extra.get("env") not in known_envs
    ]

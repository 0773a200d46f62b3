"""`mlops lineage NAME@vX.Y.Z`: where a version came from and where it went.

From git alone: the commit (author, date, message), `dvc.lock` at that commit (params, the hash of
every dependency and output), the metrics and reports kept in git, and the registry's events for
the version (registration, every stage assignment). From DVC (cache or remote): the bundle's
metadata (gate verdict, data hashes, metrics as the bundle recorded them). Deployment records
come from the readers the caller passes (`mlops.api.lineage` passes the deployment code's).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlops.adapters import git
from mlops.config import load_project
from mlops.errors import GitStateError, MlopsError, UsageError
from mlops.registry.register import bundle_entry, bundle_metadata, read_lock_at
from mlops.registry.state import iso, read_registry
from mlops.registry.tags import NAME_RE, SemVer

# Reads the deployment records of a version: `(root, name, version) -> [{env, version, at, ...}]`.
# The registry knows no deployments; the caller passes the readers (`mlops.api.lineage` passes
# `mlops.deploy.envs.deployment_records`), so what lineage lists never depends on import order.
DeploymentReader = Callable[[Path, str, str], list[dict[str, Any]]]


def deployment_records(
    root: Path, name: str, version: str, readers: Sequence[DeploymentReader] = ()
) -> list[dict[str, Any]]:
    """Every recorded deployment of `name` `version`, from each of `readers`."""
    out: list[dict[str, Any]] = []
    for reader in readers:
        out += reader(root, name, version)
    return out


@dataclass
class Lineage:
    name: str
    version: str
    commit: str
    author: str = ""
    author_email: str = ""
    date: str | None = None
    subject: str = ""
    registered_at: str | None = None
    registered_by: str = ""
    tag: str = ""
    active: bool = True
    blessed: bool | None = None
    gates: list[dict[str, Any]] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)
    data: dict[str, str] = field(default_factory=dict)  # path -> md5, as the bundle records
    hashes: dict[str, str] = field(default_factory=dict)  # every dep/out in dvc.lock -> md5
    bundle: dict[str, str] = field(default_factory=dict)  # path, md5
    metrics: dict[str, Any] = field(default_factory=dict)
    validation: dict[str, Any] | None = None  # the data validation report at the commit
    stages: list[dict[str, Any]] = field(default_factory=list)  # assignment events
    deployments: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    card: str | None = None  # `reports/model-card.md` when the version's commit holds one
    identity: str | None = None  # sha256 of what the version serves (mlops.bundle.identity)

    @property
    def reproduce(self) -> str:
        return f"mlops reproduce {self.name}@{self.version}"

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "reproduce": self.reproduce}


def parse_spec(spec: str) -> tuple[str, str]:
    """`NAME@vX.Y.Z` -> (name, version); `UsageError` (exit 2) for anything else."""
    name, sep, version = spec.partition("@")
    if not sep or not NAME_RE.match(name) or not SemVer.valid(version):
        raise UsageError(
            f"{spec!r} is not NAME@vX.Y.Z", "For example: mlops lineage penguins-classifier@v0.0.1"
        )
    return name, version


def _hashes(lock: dict[str, Any], skip: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for body in lock.values():
        for item in [*(body or {}).get("deps", []), *(body or {}).get("outs", [])]:
            digest = item.get("md5") or item.get("hash")
            if item.get("path") and digest and item["path"] != skip:
                out[item["path"]] = digest
    return out


def _params(lock: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for body in lock.values():
        for file, values in ((body or {}).get("params") or {}).items():
            if file.endswith("pipeline.yaml"):
                continue
            for key, value in (values or {}).items():
                out[key] = value
    return out


def _identity(meta: dict[str, Any]) -> str | None:
    from mlops.bundle.identity import IdentityError, version_identity

    try:
        return version_identity(meta)
    except IdentityError:
        return None


def lineage(
    root: Path | str, spec: str, *, deployment_readers: Sequence[DeploymentReader] = ()
) -> Lineage:
    """Everything known about one registered version (see the module docstring); its
    deployments as `deployment_readers` find them (none given: none listed)."""
    name, version = parse_spec(spec)
    project = load_project(root)
    root = project.root
    art = read_registry(root).artifact(name)
    v = art.version(version)
    if v is None or not v.registered:
        known = ", ".join(x.version for x in art.registered_versions(active_only=False))
        raise GitStateError(
            f"{name} {version} is not registered (known versions: {known or 'none'})",
            f"`mlops registry show {name}` lists the versions.",
        )
    info = git.commit_info(root, v.commit)
    reg = v.registration
    out = Lineage(name, version, v.commit, active=v.active, blessed=v.blessed)
    if info:
        out.author, out.author_email = info.author, info.email
        out.date, out.subject = iso(info.timestamp), info.subject
    if reg:
        out.registered_at, out.registered_by, out.tag = iso(reg.timestamp), reg.author, reg.tag
    lock = read_lock_at(root, v.commit)
    model_path = project.pipeline.model.path if name == project.pipeline.model.name else ""
    entry = bundle_entry(lock, model_path) if model_path else None
    if entry:
        out.bundle = {"path": model_path, "md5": entry[1].get("md5") or entry[1].get("hash", "")}
    out.hashes = _hashes(lock, model_path)
    out.params = _params(lock)
    out.metrics = dict(v.metrics)
    try:
        meta = bundle_metadata(project, v.commit, workspace=False)
    except (MlopsError, GitStateError) as exc:
        meta = {}
        out.notes.append(f"bundle metadata unavailable: {exc}")
    if meta:
        out.metrics = meta.get("metrics") or out.metrics
        out.data = meta.get("data") or {}
        out.params = dict(meta.get("params") or out.params)
        train = out.params.get("train")
        if isinstance(train, dict) and meta.get("estimator"):  # every param, the class too
            out.params["train"] = {"estimator": meta["estimator"], **train}
        out.identity = _identity(meta)
        verdict = meta.get("verdict") or {}
        out.gates = verdict.get("gates", [])
        if verdict.get("blessed") is not None:
            out.blessed = verdict["blessed"]
    report = git.show_file(root, v.commit, "reports/validation.json")
    if report:
        try:
            out.validation = json.loads(report)
        except ValueError:
            out.notes.append("reports/validation.json at that commit is not valid JSON")
    out.stages = [
        {
            "event": "assignment" if e.action.value == "assign" else "unassignment",
            "stage": e.stage,
            "at": iso(e.timestamp),
            "tag": e.tag,
            "author": e.author,
            "rollback_from": e.fields.get("rollback-from"),
        }
        for e in art.events
        if e.stage is not None and e.version == version
    ]
    out.deployments = deployment_records(root, name, version, deployment_readers)
    if git.show_file(root, out.commit, "reports/model-card.md") is not None:
        out.card = "reports/model-card.md"  # mlops.reports.card
    return out

"""`mlops register`: tag a commit whose model bundle is committed and on the DVC remote."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlops.adapters import dvc, git, lock
from mlops.config import Project, limits, load_project
from mlops.errors import GateFailedError, GitStateError, MlopsError, UsageError
from mlops.registry.state import Registry, read_registry
from mlops.registry.tags import (
    FIRST_VERSION,
    Action,
    SemVer,
    format_message,
    format_metrics,
    format_tag,
)
from mlops.registry.write import require_remote, sync_tags, write_tag

LOG = Path(".mlops/logs/registry.log")


@dataclass
class RegisterResult:
    name: str
    version: str
    commit: str
    tag: str
    blessed: bool | None
    forced: bool = False
    pushed: bool = False
    remote: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    files_pushed: int = 0
    skipped: str | None = None  # why nothing was registered (`skip_registered`, unchanged)
    identity: str | None = None  # sha256 of what the version serves (mlops.bundle.identity)
    unchanged_since: str | None = None  # the version whose identity this bundle has

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def read_lock_at(root: Path, commit: str) -> dict[str, Any]:
    """dvc.lock's `stages:` as committed in `commit` ({} when there is none)."""
    text = git.show_file(root, commit, "dvc.lock")
    if not text:
        return {}
    data = limits.safe_load(text, f"dvc.lock at {commit[:12]}")
    return (data or {}).get("stages", {}) if isinstance(data, dict) else {}


def bundle_entry(lock: dict[str, Any], path: str) -> tuple[str, dict[str, Any]] | None:
    """(stage, out entry) of `path` among the outputs recorded in a dvc.lock."""
    for stage, body in lock.items():
        for out in (body or {}).get("outs", []) or []:
            if out.get("path") == path:
                return stage, out
    return None


def bundle_metadata(project: Project, commit: str, workspace: bool) -> dict[str, Any]:
    """metadata.json of the bundle: from the work tree, or from DVC at `commit`."""
    rel = f"{project.pipeline.model.path}/metadata.json"
    try:
        if workspace:
            return json.loads((project.root / rel).read_text(encoding="utf-8"))
        return json.loads(dvc.read_at(project.root, rel, commit))
    except (OSError, ValueError, MlopsError) as exc:
        raise GitStateError(
            f"cannot read the bundle's metadata of {commit[:12]}: {exc}",
            "Fetch it (`dvc pull`), or rebuild it with `mlops run` on that commit.",
        ) from None
    except Exception as exc:  # DVC raises its own errors when neither cache nor remote has it
        raise GitStateError(
            f"the bundle of {commit[:12]} is neither in the DVC cache nor on the remote ({exc})",
            "Check out that commit, run `mlops run`, and `mlops commit` (which pushes it).",
        ) from None


def _failed_gates(meta: dict[str, Any]) -> list[str]:
    out = []
    for g in (meta.get("verdict") or {}).get("gates", []):
        if not g.get("passed", True):
            out.append(
                f"{g.get('metric')} {g.get('rule')} {g.get('threshold')}: got {g.get('value')}"
            )
    return out


def _same_bundle(art: Any, commit: str, md5: str) -> Any:
    """The active version registered at `commit`, or whose tag records bundle hash `md5`."""
    existing = art.version_at(commit)
    if existing is not None and existing.active:
        return existing
    for v in art.registered_versions():
        recorded = v.fields.get("bundle", "").split()
        if md5 and recorded and recorded[-1] == md5:
            return v
    return None


def _identity_of(meta: dict[str, Any]) -> str | None:
    from mlops.bundle.identity import IdentityError, version_identity

    try:
        return version_identity(meta)
    except IdentityError:
        return None


def _identity_at(project: Project, version: Any) -> str | None:
    """The identity a registered version holds: its tag's `identity:` field, or (a version
    registered before identities were recorded) computed from its bundle's metadata."""
    recorded = version.fields.get("identity")
    if recorded:
        return recorded
    try:
        return _identity_of(bundle_metadata(project, version.commit, workspace=False))
    except GitStateError:
        return None


def next_version(registry: Registry, name: str, bump: str | None) -> str:
    """The highest version ever registered (even if deregistered since), bumped."""
    art = registry.get(name)
    versions = [v.semver for v in art.versions.values() if v.semver] if art else []
    part = bump or "patch"
    if not versions:
        return str(FIRST_VERSION[part])
    return str(max(versions).bump(part))


@lock.locked
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
    """Register the bundle committed at `ref` as a new version of the model (an annotated tag).

    Refuses (exit 5): a dirty work tree, a bundle not committed at `ref`, an existing version, a
    commit already registered; refuses an unblessed bundle (exit 4) unless `force`. With
    `skip_registered`, a commit already registered, or whose bundle (its DVC hash) an active
    version already has, is not an error: nothing is written and `result.skipped` says why (CI
    runs `register` on every push to the default branch, promotions included).

    A bundle whose identity (`mlops.bundle.identity`: model, input schema, params, training
    data) equals the latest version's registers nothing, with or without `skip_registered`:
    `result.skipped` says "unchanged since vX" and `result.unchanged_since` names it.
    """
    project = load_project(root)
    root = project.root
    model = project.pipeline.model
    name = name or model.name
    if name != model.name:
        raise GitStateError(
            f"unknown model {name!r}: this project trains {model.name!r}",
            f"Run `mlops register` (or `mlops register {model.name}`).",
        )
    if version and bump:
        raise UsageError("give either --version or --bump, not both")
    if version and not SemVer.valid(version):
        raise UsageError(
            f"{version!r} is not a version", "Use vMAJOR.MINOR.PATCH, for example v1.2.0."
        )
    commit = git.rev_parse(root, ref)
    if commit is None:
        raise GitStateError(f"unknown git revision {ref!r}", "Give a commit, branch or tag.")
    at_head = commit == git.head(root)
    if at_head:
        dirty = git.changed_files(root, untracked=False)
        if dirty:
            shown = ", ".join(dirty[:6]) + (" ..." if len(dirty) > 6 else "")
            raise GitStateError(
                f"the work tree has uncommitted changes ({shown}); the bundle would not match "
                "the commit",
                "Commit the run's results first (`mlops commit`), or stash your changes.",
            )
    lock = read_lock_at(root, commit)
    entry = bundle_entry(lock, model.path)
    if entry is None:
        raise GitStateError(
            f"the model bundle {model.path} is not committed at {commit[:12]} (dvc.lock there "
            "does not record it)",
            "Run the pipeline and commit its results: `mlops run --commit`.",
        )
    stage, out = entry
    if at_head:
        changes = dvc.status(root, [stage])
        if changes:
            raise GitStateError(
                f"the outputs in the work tree differ from dvc.lock (stage {stage}: "
                f"{'; '.join(map(str, changes.get(stage, changes)))})",
                "Run `mlops run`, then `mlops commit`, then register.",
            )
    if push:
        require_remote(root, remote, "--push needs one")
        sync_tags(root, remote)
    registry = read_registry(root)
    art = registry.get(name)
    if skip_registered and art is not None:
        same = _same_bundle(art, commit, out.get("md5") or out.get("hash") or "")
        if same is not None:
            return RegisterResult(
                name, same.version, commit, same.registration.tag if same.registration else "",
                same.blessed, metrics=dict(same.metrics),
                skipped=f"{name} {same.version} already holds this bundle"
                + ("" if same.commit == commit else f" (registered at {same.commit[:12]})"),
            )  # fmt: skip
    if art is not None:
        existing = art.version_at(commit)
        if existing is not None and existing.active:
            raise GitStateError(
                f"commit {commit[:12]} is already registered as {name} {existing.version}",
                "A commit holds one version. Promote it (`mlops promote "
                f"{name} {existing.version} --to ENV`), or commit a new run and register that.",
            )
    if version:
        tag = format_tag(Action.REGISTER, name, version=version)
        if tag in registry.tag_names or (art is not None and art.version(version)):
            raise GitStateError(
                f"{name} {version} already exists",
                f"Choose another version; the next free one is "
                f"{next_version(registry, name, 'patch')} (or use --bump).",
            )
    else:
        version = next_version(registry, name, bump)
        tag = format_tag(Action.REGISTER, name, version=version)
    meta = bundle_metadata(project, commit, workspace=at_head)
    identity = _identity_of(meta)
    latest = art.latest() if art is not None else None
    if latest is not None and identity is not None and _identity_at(project, latest) == identity:
        # the model serves exactly what the latest version serves: a moved baseline, a new
        # report or a README commit is not a new version
        return RegisterResult(
            name, latest.version, commit, latest.registration.tag if latest.registration else "",
            latest.blessed, metrics=dict(latest.metrics), identity=identity,
            unchanged_since=latest.version,
            skipped=f"{name} unchanged since {latest.version} (identity {identity[:12]}: same "
            "model, input schema, params and training data)",
        )  # fmt: skip
    verdict = meta.get("verdict") or {}
    blessed = verdict.get("blessed")
    failed = _failed_gates(meta)
    if blessed is False and not force:
        raise GateFailedError(
            f"the bundle of {commit[:12]} is not blessed: it failed its quality gates"
            + (f" ({'; '.join(failed)})" if failed else ""),
            "Improve the model and run again, or register it anyway with --force (the tag "
            "then records `blessed: false`, and `track: latest` environments skip it).",
        )
    metrics = {k: v for k, v in (meta.get("metrics") or {}).items() if k != "test_rows"}
    fields = {
        "blessed": "true" if blessed is not False else "false",
        "forced": ("; ".join(failed) or "unblessed") if blessed is False else "",
        "metrics": format_metrics(metrics),
        "bundle": f"{model.path} {out.get('md5') or out.get('hash') or ''}".strip(),
        "identity": identity or "",
        "note": (message or "").replace("\n", " "),
    }
    text = format_message(f"Registering artifact {name} version {version}", fields)
    try:  # the bundle (and the data it came from) must exist beyond this machine
        files = dvc.push(root, root / LOG, revs=None if at_head else [commit])
    except MlopsError as exc:
        raise GitStateError(
            f"could not push the bundle to the DVC remote: {exc.message}; nothing was registered",
            f"Check `remote:` in pipeline.yaml and the log {LOG}, then run again.",
        ) from None
    written = write_tag(root, tag, commit, text, push=push, remote=remote)
    return RegisterResult(
        name=name,
        version=version,
        commit=commit,
        tag=tag,
        blessed=blessed,
        forced=blessed is False,
        pushed=written.pushed,
        remote=written.remote,
        metrics=metrics,
        files_pushed=files,
        identity=identity,
    )

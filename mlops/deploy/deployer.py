"""`mlops deploy`: put a registered version into an environment's target, verified and recorded.

Steps (each named in reports and errors):

1. **resolve**: the version to deploy: the environment's desired version (`track: latest`, or
   the pin file), or `--version`, a pushed stage tag (`--from-tag`), or the previous version
   (`--rollback`). An unblessed version is refused unless `force`.
2. **fetch**: the bundle as committed at the version's commit, from the DVC cache or remote.
3. **verify**: every file's md5 against what DVC recorded at that commit (so against git), and
   every sha256 against the bundle's `metadata.json`.
4. **install**: `Target.install` copies it to `versions/<version>/` (complete or absent).
5. **smoke**: the installed copy loads, sample rows pass its schema, it predicts them.
6. **switch**: `current` is replaced atomically.
7. **record**: the stage tag `NAME#ENV#N` (pushed when a remote takes it), then one line in
   `history.jsonl`; `deployment.json` was written at install.

Until the switch, a failure leaves the live version untouched (exit 6, the report names the
step). A failure while recording switches back. A journal (`.deploy-journal.json`) is written
before the fetch and removed after the record; the next deploy of the target reads a journal
left by a killed deploy, records what went live (or that nothing did), and removes temporary
leftovers. Deploying the version already live does nothing.

The resolve step lives in `mlops.deploy.resolve`; the journal, the recording and the repair of
a killed deploy in `mlops.deploy.recovery`.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlops.adapters import dvc, git
from mlops.bundle import verify_bundle
from mlops.config import Project, load_project
from mlops.deploy.faults import checkpoint
from mlops.deploy.recovery import (
    AnyTarget,
    _drop_journal,
    _history,
    _Recorder,
    _repair,
    _write_journal,
    complete,
)
from mlops.deploy.remote import RemoteTarget, name_stored_copy, open_any
from mlops.deploy.resolve import Resolved, _refuse_unblessed, resolve
from mlops.deploy.smoke import smoke_test
from mlops.deploy.target import DEPLOYMENT, JOURNAL, LEFTOVERS, now_iso
from mlops.errors import DeployError, GateFailedError, GitStateError, MlopsError
from mlops.registry.desired import environment, read_pin
from mlops.registry.state import Registry, read_registry
from mlops.registry.write import sync_tags


@dataclass
class DeployResult:
    """What `mlops deploy` did."""

    env: str
    name: str
    version: str
    target: str
    action: str  # "deployed" | "unchanged" | "failed"
    previous: str | None = None
    commit: str | None = None
    source: str = ""
    registration_tag: str | None = None
    stage_tag: str | None = None
    tag_pushed: bool | None = None  # None: no new tag was needed
    rollback_from: str | None = None
    smoke: dict[str, Any] | None = None
    steps: list[dict[str, Any]] = field(default_factory=list)
    repaired: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    merge_request: dict[str, Any] | None = None  # a rollback's re-pin (mlops.deploy.repin)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


__all__ = ["JOURNAL", "LEFTOVERS", "deploy", "target_of"]


def target_of(project: Project, env: str) -> AnyTarget:
    """The deployment target of `env` (`target:` in pipeline.yaml; default `.mlops/envs/ENV`):
    a local directory or an object-store URL (`s3://bucket/prefix`)."""
    spec = environment(project, env)
    return open_any(
        spec.target or f".mlops/envs/{env}", project.root, where=f"environments.{env}.target"
    )


# ---- the deploy ---------------------------------------------------------------------------------


class _Steps:
    """Times each step; remembers which one is running (for the failure report)."""

    def __init__(self, on_step: Callable[[dict[str, Any]], None] | None) -> None:
        self.done: list[dict[str, Any]] = []
        self.current = "resolve"
        self.on_step = on_step or (lambda s: None)

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[dict[str, Any]]:
        self.current = name
        info: dict[str, Any] = {"step": name, "ok": False}
        t0 = time.perf_counter()
        try:
            yield info
            info["ok"] = True
        finally:
            info["seconds"] = round(time.perf_counter() - t0, 3)
            self.done.append(info)
            self.on_step(info)


HINTS = {
    "fetch": "Check the DVC remote (`remote:` in pipeline.yaml) holds the version's data "
    "(`mlops register` pushes it), and that the commit is fetched (CI: GIT_DEPTH: 0).",
    "verify": "The bundle was altered after registration: do not deploy it. Register a "
    "freshly built version (`mlops run --commit && mlops register`) and deploy that.",
    "install": "Check the target directory is writable and has space, then run again.",
    "smoke": "The version cannot serve: fix the model or its schema, register a new version, "
    "and deploy that.",
    "switch": "Check the target directory is writable, then run again.",
    "record": "Check the target directory is writable, then run again.",
}


def _verify(fetched: dvc.FetchedDir) -> dict[str, Any]:
    """md5 of every file against DVC's record, then sha256 against metadata.json."""
    import hashlib

    problems = []
    on_disk = {str(p.relative_to(fetched.path)) for p in fetched.path.rglob("*") if p.is_file()}
    for rel, md5 in sorted(fetched.files.items()):
        f = fetched.path / rel
        if not f.is_file():
            problems.append(f"{rel}: missing")
            continue
        h = hashlib.md5(usedforsecurity=False)
        with open(f, "rb") as fh:
            while block := fh.read(1 << 20):
                h.update(block)
        if md5 and h.hexdigest() != md5:
            problems.append(f"{rel}: md5 {h.hexdigest()[:12]}… != {md5[:12]}… recorded in git")
    extra = sorted(on_disk - set(fetched.files))
    problems += [f"{rel}: not in the registered bundle" for rel in extra]
    if problems:
        raise DeployError(
            "the fetched bundle does not match its registration: " + "; ".join(problems)
        )
    return verify_bundle(fetched.path)


@dataclass
class Context:
    """What every deploy-like command needs: the project, its environment, target and pushes."""

    project: Project
    env: str
    target: AnyTarget
    notes: list[str]
    do_push: bool
    has_remote: bool
    remote: str

    @property
    def root(self) -> Path:
        """The project's root."""
        return self.project.root

    @property
    def name(self) -> str:
        """The model's name."""
        return self.project.pipeline.model.name

    def recorder(self, stage: str | None = None) -> _Recorder:
        """The stage-tag writer of `stage` (default: the environment's own stage)."""
        return _Recorder(
            self.root, self.name, stage or self.env, self.do_push, self.remote, self.notes,
            self.has_remote,
        )  # fmt: skip


def open_context(root: Path | str, env: str, push: bool | None, remote: str) -> Context:
    """Load the project, open `env`'s target, decide whether stage tags are pushed, and push
    what a killed deploy left in this clone only (step 0 of every deploy)."""
    project = load_project(root)
    root = project.root
    environment(project, env)  # an unknown environment is a usage error
    target = target_of(project, env)
    notes: list[str] = []
    has_remote = git.remote_url(root, remote) is not None
    if push and not has_remote:
        raise GitStateError(
            f"no git remote {remote!r}: --push needs one",
            f"Add one (`git remote add {remote} URL`), or deploy without --push.",
        )
    do_push = has_remote and push is not False
    if do_push:
        try:  # the newest tags and counters (a CI checkout can predate a tag an earlier job pushed)
            sync_tags(root, remote)
        except GitStateError as exc:
            if push:
                raise
            notes.append(f"not pushing the stage tag: {exc.message}")
            do_push = False
    if do_push:  # what a killed deploy or promote left in this clone only
        from mlops.registry.pending import push_pending_stage_tags

        notes += push_pending_stage_tags(root, project.pipeline.model.name, remote)
    elif push is None:
        notes.append(f"no git remote {remote!r}: the stage tag stays local")
    return Context(project, env, target, notes, do_push, has_remote, remote)


def resolve_checked(
    ctx: Context,
    registry: Registry,
    steps: _Steps,
    *,
    version: str | None,
    from_tag: str | None,
    rollback: bool,
    force: bool,
) -> Resolved:
    """Step 1: the version to deploy, refused when unblessed (unless `force`); a note when it
    differs from the environment's pin file."""
    with steps.step("resolve") as info:
        r = resolve(
            ctx.project, registry, ctx.env, version=version, from_tag=from_tag,
            rollback=rollback, force=force,
        )  # fmt: skip
        info["detail"] = f"{r.version} ({r.source})"
    if r.blessed is False and not force:
        _refuse_unblessed(ctx.name, r, f"tag {r.registration_tag}")
    pin_file = environment(ctx.project, ctx.env).pin
    if pin_file is not None:
        pin = read_pin(ctx.root, pin_file)
        if pin is not None and pin.version != r.version:
            ctx.notes.append(
                f"{pin_file} pins {pin.version}; {ctx.env} now runs {r.version}. Make it "
                f"durable with `mlops promote {ctx.name} {r.version} --to {ctx.env}` (a merge "
                "request)."
            )
    return r


def new_result(ctx: Context, r: Resolved) -> DeployResult:
    """The result of deploying `r` to the context's environment (filled in by the steps)."""
    return DeployResult(
        ctx.env,
        ctx.name,
        r.version,
        str(ctx.target.root),
        "deployed",
        commit=r.commit,
        source=r.source,
        registration_tag=r.registration_tag,
        rollback_from=r.rollback_from,
        notes=ctx.notes,
    )


def deploy(
    root: Path | str,
    env: str,
    *,
    version: str | None = None,
    from_tag: str | None = None,
    rollback: bool = False,
    force: bool = False,
    push: bool | None = None,
    remote: str = "origin",
    on_step: Callable[[dict[str, Any]], None] | None = None,
) -> DeployResult:
    """Deploy a registered version to environment `env` (see the module docstring).

    `push`: None pushes the stage tag when `remote` exists (saying so when it cannot), True
    requires it, False keeps it local. Raises `DeployError` (exit 6) naming the failed step.
    """
    ctx = open_context(root, env, push, remote)
    registry = read_registry(ctx.root)
    steps = _Steps(on_step)
    r = resolve_checked(
        ctx, registry, steps, version=version, from_tag=from_tag, rollback=rollback, force=force
    )
    rec = ctx.recorder()
    result = new_result(ctx, r)
    target = ctx.target
    with target.lock():
        result.repaired = _repair(target, rec, registry)
        live = target.current_version()
        result.previous = live
        if live == r.version and complete(target, r.version):
            result.action = "unchanged"
            result.stage_tag, result.tag_pushed = rec.stage_tag(
                r.version, r.commit, r.registration_tag, rollback_from=r.rollback_from
            )
            result.steps = steps.done
            return result
        if live == r.version:  # live, but its stored files no longer match: a repair
            ctx.notes.append(
                f"the live copy of {r.version} in {target.root} no longer matched its hashes: "
                "its files are installed again under the same deployment record"
            )
        deploy_id = _start_journal(target, r, live)
        _install_and_switch(ctx.project, target, r, steps, result, force)
        _record_deploy(ctx, rec, r, steps, result, deploy_id)
        _drop_journal(target)
    result.steps = steps.done
    return result


def _start_journal(target: AnyTarget, r: Resolved, live: str | None) -> str:
    """Write the journal the next deploy repairs from; the new deploy's id."""
    deploy_id = secrets.token_hex(8)
    _write_journal(
        target,
        {
            "id": deploy_id,
            "version": r.version,
            "previous": live,
            "commit": r.commit,
            "registration_tag": r.registration_tag,
            "source": r.source,
            "rollback_from": r.rollback_from,
            "started": now_iso(),
            "pid": os.getpid(),
            # installed by this deploy (so a kill before the switch leaves it to remove)
            "new_install": not target.has_version(r.version),
        },
    )
    return deploy_id


def _record_deploy(
    ctx: Context,
    rec: _Recorder,
    r: Resolved,
    steps: _Steps,
    result: DeployResult,
    deploy_id: str,
) -> None:
    """Step 7: the stage tag, then the history event; a failure switches back."""
    target, live = ctx.target, result.previous
    try:
        with steps.step("record") as info:
            result.stage_tag, result.tag_pushed = rec.stage_tag(
                r.version, r.commit, r.registration_tag, rollback_from=r.rollback_from
            )
            checkpoint("tagged")
            _history(
                target,
                {
                    "event": "rollback" if r.rollback_from else "deploy",
                    "env": ctx.env,
                    "name": ctx.name,
                    "version": r.version,
                    "deploy_id": deploy_id,
                    "previous": live,
                    "commit": r.commit,
                    "tag": result.stage_tag,
                    "pushed": result.tag_pushed,
                    "source": r.source,
                    "rollback_from": r.rollback_from,
                    "smoke": result.smoke,
                },
            )
            checkpoint("recorded")
            info["detail"] = result.stage_tag or ""
    except Exception as exc:
        _switch_back(target, live)
        _drop_journal(target)
        raise _failure("record", exc, live, steps, result) from None


def _install_and_switch(
    project: Project,
    target: AnyTarget,
    r: Resolved,
    steps: _Steps,
    result: DeployResult,
    force: bool,
    *,
    switch: bool = True,
) -> Path:
    """Steps 2 to 6: fetch, verify, install, smoke-test, and (unless not `switch`) switch.

    Returns the installed copy. A failure removes what this deploy installed, puts the live
    version back, records a `deploy-failed` event and raises `DeployError` naming the step."""
    name = project.pipeline.model.name
    live = result.previous
    fetch_dir = target.scratch_dir(f"{r.version}-")
    installed = False
    path: Path | None = None
    try:
        with steps.step("fetch") as info:
            fetched = dvc.fetch_dir(project.root, project.pipeline.model.path, r.commit, fetch_dir)
            info["detail"] = f"{len(fetched.files)} files at {r.commit[:12]}"
        checkpoint("fetched")
        with steps.step("verify") as info:
            meta = _verify(fetched)
            blessed = (meta.get("verdict") or {}).get("blessed")
            info["detail"] = f"{len(fetched.files)} md5 and {len(meta.get('files') or {})} sha256"
        if blessed is False and not force:
            _refuse_unblessed(name, r, "its metadata.json")
        checkpoint("verified")
        with steps.step("install") as info:
            existed = target.has_version(r.version)
            path = target.install(
                fetch_dir,
                r.version,
                name=name,
                commit=r.commit,
                extra={
                    "env": result.env,
                    "registration_tag": r.registration_tag,
                    "dvc_md5": fetched.md5,
                },
            )
            installed = not existed
            info["detail"] = f"versions/{r.version}"
        shutil.rmtree(fetch_dir, ignore_errors=True)
        checkpoint("installed")
        with steps.step("smoke") as info:
            result.smoke = smoke_test(
                path,
                extra_files=(DEPLOYMENT,),
                trusted_types=project.pipeline.model.trusted_types,
                code_root=project.root,
            )
            info["detail"] = f"{result.smoke['rows']} rows predicted ({result.smoke['mode']})"
        checkpoint("smoke-tested")
        if switch:
            with steps.step("switch") as info:
                target.switch(r.version)
                info["detail"] = f"current -> versions/{r.version}"
            checkpoint("switched")
    except GateFailedError:
        shutil.rmtree(fetch_dir, ignore_errors=True)
        _drop_journal(target)
        raise
    except Exception as exc:
        shutil.rmtree(fetch_dir, ignore_errors=True)
        step = steps.current
        # messages name the fetched bundle and the stored version, not scratch copies of them
        name_stored_copy(
            exc, fetch_dir, f"{project.pipeline.model.path} fetched at {r.commit[:12]}"
        )
        if path is not None and isinstance(target, RemoteTarget):
            name_stored_copy(exc, path, f"{target.root}/versions/{r.version}")
        if installed and target.current_version() != r.version:
            target.remove_version(r.version)
        if step == "switch":
            _switch_back(target, live)
        _drop_journal(target)
        err = _failure(step, exc, live, steps, result)
        with contextlib.suppress(OSError):
            _history(
                target,
                {
                    "event": "deploy-failed",
                    "env": result.env,
                    "name": name,
                    "version": r.version,
                    "step": step,
                    "reason": err.details["reason"],  # type: ignore[index]
                    "live": target.current_version(),
                },
            )
        raise err from None
    return path


def _switch_back(target: AnyTarget, previous: str | None) -> None:
    """Put `previous` back in `current` (or remove `current` when nothing was live)."""
    with contextlib.suppress(Exception):
        if previous is not None:
            target.switch(previous)
        else:
            target.clear_current()


def _failure(
    step: str, exc: BaseException, live: str | None, steps: _Steps, result: DeployResult
) -> DeployError:
    """The error of a deploy (`result`: which version, where) that failed at `step`."""
    name, version, env = result.name, result.version, result.env
    reason = exc.message if isinstance(exc, MlopsError) else f"{type(exc).__name__}: {exc}"
    still = (
        f"{name} {live} is still live in {env}"
        if live
        else f"nothing was live in {env} and nothing is now"
    )
    result.steps = steps.done
    result.action = "failed"
    hint = exc.hint if isinstance(exc, MlopsError) and exc.hint else HINTS.get(step)
    return DeployError(
        f"deploying {name} {version} to {env} failed at step {step}: {reason}. {still}.",
        hint,
        details={"step": step, "reason": reason, "live": live, "result": result.to_dict()},
    )

"""Canary and shadow releases: a candidate installed beside the live version, a record saying
how much traffic it answers, stepped forward or aborted on evidence.

The record sits next to the `current` pointer, with the pointer's guarantees:

    <target>/canary.json     (a local target: temp file + fsync + rename, atomic for readers)
    <url>/canary             (an object-store target: one PUT, atomic for readers)

    {"mode": "canary" | "shadow", "version": "v0.0.2", "percent": 10, "live": "v0.0.1",
     "steps": [10, 50, 100], "dvc_md5": "<md5>.dir", "manifest_sha256": "…" (object store),
     "started_at": "…", "step_started": 1717000000.0, "id": "…"}

It is written only after the candidate was fetched, verified against git, installed, read back
and smoke-tested, and servers verify the candidate as they verify `current` (against git in a
checkout, against the record's manifest hash in object storage). A shadow answers nothing
(percent 0): servers score a copy of every request with it, off the request's path.

Git records each release as a GTO stage of its own, `NAME#ENV-canary#N` or
`NAME#ENV-shadow#N` (unassigned by `NAME#ENV-canary!#N` when it ends), so `mlops envs`,
`mlops registry show` and `gto show` see it. Promoting past the last step switches `current`
to the candidate and assigns the environment's own stage, as `mlops deploy` does.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlops.deploy.deployer import (
    Context,
    DeployResult,
    _install_and_switch,
    _Steps,
    new_result,
    open_context,
    resolve_checked,
)
from mlops.deploy.integrity import IntegrityError
from mlops.deploy.recovery import AnyTarget, _history, _repair, complete
from mlops.deploy.target import Target, check_version, now_iso
from mlops.errors import GitStateError, MlopsError, UsageError
from mlops.registry.desired import desired_version
from mlops.registry.state import read_registry
from mlops.registry.tags import format_message

RECORD_FILE = "canary.json"  # local target
RECORD_KEY = "canary"  # object-store target
MODES = ("canary", "shadow")


def stage_of(env: str, mode: str) -> str:
    """The GTO stage a release of `mode` in `env` is recorded as (`staging-canary`)."""
    return f"{env}-{mode}"


# ---- the record -----------------------------------------------------------------------------


def parse_record(raw: bytes, where: str) -> dict[str, Any]:
    """A canary record's fields, checked (it comes from storage: trust nothing)."""
    try:
        data = json.loads(raw)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise IntegrityError(f"{where}: the canary record is not a JSON object", _REWRITE)
    if data.get("mode") not in MODES:
        raise IntegrityError(f"{where}: the canary record's mode is not canary or shadow", _REWRITE)
    try:
        check_version(data.get("version"))  # type: ignore[arg-type]
    except MlopsError:
        raise IntegrityError(
            f"{where}: the canary record names {str(data.get('version'))[:80]!r}, not a version",
            _REWRITE,
        ) from None
    percent: Any = data.get("percent")
    if (
        type(percent) not in (int, float)
        or not math.isfinite(percent)
        or not 0 <= percent <= 100
        or (data["mode"] == "shadow" and percent != 0)
    ):
        raise IntegrityError(f"{where}: the canary record's percent is not 0..100", _REWRITE)
    for key in ("dvc_md5", "manifest_sha256"):
        if key in data and not isinstance(data[key], str):
            raise IntegrityError(f"{where}: the canary record's {key} is not a string", _REWRITE)
    step: Any = data.get("step_started")
    if type(step) not in (int, float) or not math.isfinite(step):
        data["step_started"] = 0.0
    return data


_REWRITE = "Abort the release (`mlops abort-canary --env ENV`) and start it again."


def read_record(target: AnyTarget) -> dict[str, Any] | None:
    """The target's canary record (checked), or None when no release is in progress."""
    raw: bytes | None
    if isinstance(target, Target):
        try:
            raw = (target.root / RECORD_FILE).read_bytes()
        except FileNotFoundError:
            return None
        where = str(target.root / RECORD_FILE)
    else:
        raw = target.store.read_bytes(RECORD_KEY)
        if raw is None:
            return None
        where = f"{target.root}/{RECORD_KEY}"
    record = parse_record(raw, where)
    if not isinstance(target, Target) and not (
        record.get("dvc_md5") and record.get("manifest_sha256")
    ):
        raise IntegrityError(f"{where}: the canary record carries no hashes", _REWRITE)
    return record


def record_etag(target: AnyTarget) -> Any:
    """A cheap change check of the record (mtime and inode locally, the ETag in a store)."""
    if isinstance(target, Target):
        try:
            st = os.stat(target.root / RECORD_FILE)
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_size)
    return target.store.etag(RECORD_KEY)


def write_record(target: AnyTarget, record: dict[str, Any]) -> None:
    """Write the record atomically (readers see the old record or the new one, never a part)."""
    data = (json.dumps(record, indent=2, sort_keys=True, default=str) + "\n").encode()
    if not isinstance(target, Target):
        target.store.write_bytes(RECORD_KEY, data)
        return
    tmp = target.root / f".{RECORD_FILE}.tmp-{secrets.token_hex(4)}"
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target.root / RECORD_FILE)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fd = os.open(target.root, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def clear_record(target: AnyTarget) -> None:
    """Remove the record (no release in progress)."""
    if isinstance(target, Target):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(target.root / RECORD_FILE)
    else:
        target.store.delete([RECORD_KEY])


def hashes_of(target: AnyTarget, version: str) -> dict[str, str]:
    """The hashes a server verifies the candidate against (those the pointer would carry)."""
    if isinstance(target, Target):
        dep = target.deployment(version) or {}
        return {"dvc_md5": dep["dvc_md5"]} if isinstance(dep.get("dvc_md5"), str) else {}
    found = target.manifest(version)
    if found is None:
        raise IntegrityError(f"{target.root}/versions/{version} has no manifest")
    raw, manifest = found
    return {
        "dvc_md5": str(manifest.get("dvc_md5")),
        "manifest_sha256": hashlib.sha256(raw).hexdigest(),
    }


# ---- starting, stepping, ending ---------------------------------------------------------------


@dataclass
class CanaryResult:
    """What a canary command did."""

    env: str
    name: str
    version: str
    action: str  # "started" | "stepped" | "promoted" | "aborted"
    mode: str
    percent: float
    live: str | None
    stage_tag: str | None = None
    tag_pushed: bool | None = None
    unassigned: str | None = None  # the ENV-canary/ENV-shadow unassignment tag
    steps: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def start(
    root: Path | str,
    env: str,
    *,
    percent: float | None = None,
    shadow: bool = False,
    version: str | None = None,
    force: bool = False,
    push: bool | None = None,
    remote: str = "origin",
    on_step: Any = None,
) -> CanaryResult:
    """Install the candidate beside the live version and start a canary (`percent` of the
    answers) or a shadow release; record it as the stage `ENV-canary` / `ENV-shadow`."""
    if shadow == (percent is not None):
        raise UsageError("give exactly one of --canary PERCENT and --shadow")
    if percent is not None and not 0 < percent < 100:
        raise UsageError(
            f"--canary {percent:g}: the share must be above 0 and below 100 percent",
            "Deploy without --canary to switch all traffic at once.",
        )
    mode = "shadow" if shadow else "canary"
    ctx = open_context(root, env, push, remote)
    registry = read_registry(ctx.root)
    steps = _Steps(on_step)
    target = ctx.target
    if version is None:  # the desired version; when that is live already, the latest blessed
        latest = registry.artifact(ctx.name).latest(blessed_only=True)
        desired = desired_version(ctx.root, env, ctx.name, project=ctx.project, registry=registry)
        if desired.version == target.current_version() and latest is not None:
            version = latest.version
    r = resolve_checked(
        ctx, registry, steps, version=version, from_tag=None, rollback=False, force=force
    )
    with target.lock():
        ctx.notes += [f"repaired: {x}" for x in _repair(target, ctx.recorder(), registry)]
        live = target.current_version()
        if live is None:
            raise GitStateError(
                f"nothing is live in {env}: a {mode} needs a live version to compare with",
                f"Deploy one first (`mlops deploy --env {env}`).",
            )
        if live == r.version:
            raise GitStateError(
                f"{ctx.name} {r.version} is already live in {env}",
                "Register a new version, or give the candidate with --version.",
            )
        existing = read_record(target)
        if existing is not None:
            raise GitStateError(
                f"a {existing['mode']} of {existing['version']} is in progress in {env}",
                f"Promote or abort it first (`mlops promote-canary --env {env}` or "
                f"`mlops abort-canary --env {env}`).",
            )
        result: DeployResult = new_result(ctx, r)
        result.previous = live
        _install_and_switch(ctx.project, target, r, steps, result, force, switch=False)
        with steps.step("canary") as info:
            first = 0 if shadow else float(percent)  # type: ignore[arg-type]
            record = {
                "id": secrets.token_hex(8),
                "mode": mode,
                "version": r.version,
                "commit": r.commit,
                "percent": first,
                "live": live,
                "steps": list(ctx.project.pipeline.canary.steps),
                "started_at": now_iso(),
                "step_started": time.time(),
                **hashes_of(target, r.version),
            }
            write_record(target, record)
            info["detail"] = f"{mode} of {r.version}: {first:g}% of answers"
        out = CanaryResult(env, ctx.name, r.version, "started", mode, first, live, notes=ctx.notes)
        with steps.step("record") as info:
            rec = ctx.recorder(stage_of(env, mode))
            out.stage_tag, out.tag_pushed = rec.stage_tag(
                r.version, r.commit, r.registration_tag, percent=f"{first:g}"
            )
            _history(
                target,
                {
                    "event": f"{mode}-start",
                    "env": env,
                    "name": ctx.name,
                    "version": r.version,
                    "live": live,
                    "percent": first,
                    "tag": out.stage_tag,
                    "smoke": result.smoke,
                },
            )
            info["detail"] = out.stage_tag or ""
    out.steps = steps.done
    return out


def _require(ctx: Context) -> dict[str, Any]:
    record = read_record(ctx.target)
    if record is None:
        raise GitStateError(
            f"no canary or shadow release is in progress in {ctx.env}",
            f"Start one: mlops deploy --env {ctx.env} --canary 10",
        )
    return record


def _end_stage(ctx: Context, record: dict[str, Any], why: str) -> tuple[str | None, bool | None]:
    """Unassign `ENV-canary`/`ENV-shadow` when the registry still assigns it."""
    from mlops.registry.write import write_stage_tag

    stage = stage_of(ctx.env, record["mode"])
    art = read_registry(ctx.root).get(ctx.name)
    holder = art.in_stage(stage) if art else None
    if holder is None:
        return None, None
    message = format_message(
        f"Unassigning stage {stage} from artifact {ctx.name} version {holder.version}",
        {"reason": why, "deployed-by": "mlops"},
    )
    if ctx.do_push:
        try:
            w = write_stage_tag(
                ctx.root, ctx.name, stage, holder.commit, message, unassign=True, push=True,
                remote=ctx.remote,
            )  # fmt: skip
            return w.tag, True
        except GitStateError as exc:
            ctx.notes.append(f"the unassignment could not be pushed: {exc.message}")
    w = write_stage_tag(ctx.root, ctx.name, stage, holder.commit, message, unassign=True)
    if ctx.has_remote:
        ctx.notes.append(f"tag {w.tag} is local only; share it: git push {ctx.remote} '{w.tag}'")
    return w.tag, False


def promote(
    root: Path | str,
    env: str,
    *,
    full: bool = False,
    push: bool | None = None,
    remote: str = "origin",
) -> CanaryResult:
    """Step the release forward: a shadow becomes a canary at the first step; a canary takes the
    next step; promoting into the last step (or with `full`) makes the candidate live
    (`current` switched, `ENV` assigned, `ENV-canary` unassigned)."""
    ctx = open_context(root, env, push, remote)
    target = ctx.target
    with target.lock():
        record = _require(ctx)
        version, live = record["version"], target.current_version()
        steps = [s for s in record.get("steps") or ctx.project.pipeline.canary.steps if s > 0]
        later = [s for s in steps if s > record["percent"]]
        nxt = 100 if full or not later else later[0]
        if record["mode"] == "shadow" and not full:
            nxt = steps[0] if steps else 100
        out = CanaryResult(env, ctx.name, version, "stepped", "canary", nxt, live, notes=ctx.notes)
        if nxt < 100:
            was = record["mode"], record["percent"]
            write_record(target, {**record, "mode": "canary", "percent": nxt,
                                  "step_started": time.time()})  # fmt: skip
            if was[0] == "shadow":  # the shadow stage ends, the canary stage starts
                out.unassigned, _ = _end_stage(ctx, record, "promoted from shadow to canary")
                reg = read_registry(ctx.root).artifact(ctx.name).version(version)
                rtag = reg.registration.tag if reg and reg.registration else None
                out.stage_tag, out.tag_pushed = ctx.recorder(stage_of(env, "canary")).stage_tag(
                    version, record.get("commit") or (reg.commit if reg else ""), rtag,
                    percent=f"{nxt:g}",
                )  # fmt: skip
            _history(target, {"event": "canary-step", "env": env, "name": ctx.name,
                              "version": version, "from": f"{was[0]} {was[1]:g}%",
                              "percent": nxt, "live": live})  # fmt: skip
            return out
        if not complete(target, version):
            raise IntegrityError(
                f"the candidate {version} in {target.root} is incomplete or altered: not promoted",
                f"Abort (`mlops abort-canary --env {env}`) and start the release again.",
            )
        target.switch(version)  # the candidate is live: servers switch at their next poll
        clear_record(target)  # a kill before this leaves a record naming the live version
        out.action, out.percent = "promoted", 100
        out.unassigned, _ = _end_stage(ctx, record, f"promoted to {env}")
        reg = read_registry(ctx.root).artifact(ctx.name).version(version)
        rtag = reg.registration.tag if reg and reg.registration else None
        out.stage_tag, out.tag_pushed = ctx.recorder().stage_tag(
            version, record.get("commit") or (reg.commit if reg else ""), rtag,
            promoted_from=stage_of(env, record["mode"]),
        )  # fmt: skip
        _history(target, {"event": "canary-promoted", "env": env, "name": ctx.name,
                          "version": version, "previous": live, "tag": out.stage_tag})  # fmt: skip
    return out


def abort(
    root: Path | str,
    env: str,
    *,
    reason: str = "aborted by hand",
    push: bool | None = None,
    remote: str = "origin",
) -> CanaryResult:
    """End the release: remove the record (servers stop routing to the candidate at their next
    poll), unassign `ENV-canary`/`ENV-shadow`, record why. The live version never changed."""
    ctx = open_context(root, env, push, remote)
    target = ctx.target
    with target.lock():
        record = _require(ctx)
        clear_record(target)
        live = target.current_version()
        out = CanaryResult(env, ctx.name, record["version"], "aborted", record["mode"], 0, live,
                           notes=ctx.notes, reason=reason)  # fmt: skip
        out.unassigned, out.tag_pushed = _end_stage(ctx, record, reason)
        _history(target, {"event": f"{record['mode']}-aborted", "env": env, "name": ctx.name,
                          "version": record["version"], "live": live, "reason": reason,
                          "tag": out.unassigned})  # fmt: skip
    return out


def status(root: Path | str, env: str) -> dict[str, Any] | None:
    """The release in progress in `env` (its record), or None."""
    from mlops.config import load_project
    from mlops.deploy.deployer import target_of

    return read_record(target_of(load_project(root), env))

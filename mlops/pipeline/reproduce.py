"""`mlops reproduce NAME@vX.Y.Z`: rebuild a registered version from scratch and check its bytes.

The version's commit is checked out in a scratch work tree (`.mlops/reproduce/`, sharing the
repository's git objects and DVC cache), and every stage of its `dvc.lock` is recomputed with
DVC's `force`: the run cache is not consulted, so no output is restored from an earlier run
(inputs that are not outputs of a stage come from git, and the cache is only written to). Then
every output's hash is compared with the one `dvc.lock` recorded at the tag. Directory outputs
that differ are compared file by file (from their manifests in the cache), and the bundle's
`metadata.json` field by field, to say why where it can: most often another library version.

Byte identity is promised for the same platform, Python, mlops and library versions: a
scikit-learn or NumPy upgrade may change the fitted arrays or their serialisation.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mlops.adapters import dvc, git
from mlops.config import load_project
from mlops.errors import DeployError, GitStateError, StageFailedError
from mlops.pipeline.outcome import read_lock

SCRATCH = Path(".mlops/reproduce")


class NotReproduced(DeployError):
    """A rebuild gave other bytes than the version recorded (exit 6: an artifact failed
    verification, as a bundle whose hashes do not match does)."""


@dataclass
class OutputCheck:
    path: str
    stage: str
    recorded: str | None
    rebuilt: str | None
    files: list[str] = field(default_factory=list)  # differing files of a directory output
    why: list[str] = field(default_factory=list)

    @property
    def same(self) -> bool:
        return self.recorded is not None and self.recorded == self.rebuilt


@dataclass
class ReproduceResult:
    name: str
    version: str
    commit: str
    tag: str
    stages: list[dict[str, Any]] = field(default_factory=list)  # name, status, seconds
    outputs: list[OutputCheck] = field(default_factory=list)
    seconds: float = 0.0
    kept: str | None = None  # the scratch work tree, when asked to keep it

    @property
    def identical(self) -> bool:
        return bool(self.outputs) and all(o.same for o in self.outputs)

    @property
    def differing(self) -> list[OutputCheck]:
        return [o for o in self.outputs if not o.same]

    def to_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in asdict(self).items() if k != "outputs"}
        out["identical"] = self.identical
        out["outputs"] = [{**asdict(o), "same": o.same} for o in self.outputs]
        return out

    def error(self) -> NotReproduced | None:
        """The error `mlops reproduce` exits with when the rebuild differs."""
        if self.identical:
            return None
        lines = [
            f"{o.path}: {o.recorded} recorded, {o.rebuilt} rebuilt"
            + (f" ({'; '.join(o.why)})" if o.why else "")
            for o in self.differing
        ]
        return NotReproduced(
            f"{self.name} {self.version} did not rebuild byte for byte: "
            f"{len(lines)} of {len(self.outputs)} outputs differ",
            "Byte identity holds for the same platform and library versions (pip freeze); "
            "rerun with --keep to inspect the rebuilt outputs.",
            details=lines,
        )


def _outs(lock: dict[str, Any]) -> dict[str, tuple[str, str | None]]:
    """path -> (stage, md5) of every output in a dvc.lock's `stages:`."""
    out: dict[str, tuple[str, str | None]] = {}
    for stage, body in lock.items():
        for item in (body or {}).get("outs", []) or []:
            if item.get("path"):
                out[item["path"]] = (stage, item.get("md5") or item.get("hash"))
    return out


def _cache_file(cache: Path, md5: str) -> Path:
    return cache / "files" / "md5" / md5[:2] / md5[2:]


def _manifest(cache: Path, md5: str | None) -> dict[str, str] | None:
    """relpath -> md5 of a directory output, from its `.dir` object in the cache."""
    if not md5 or not md5.endswith(".dir"):
        return None
    try:
        entries = json.loads(_cache_file(cache, md5).read_text(encoding="utf-8"))
        return {e["relpath"]: e["md5"] for e in entries}
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _json_at(cache: Path, md5: str | None) -> dict[str, Any] | None:
    if not md5:
        return None
    try:
        data = json.loads(_cache_file(cache, md5).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _explain(check: OutputCheck, cache: Path) -> None:
    """Fill `files` and `why` of a differing output, as far as the cache allows."""
    if check.recorded is None:
        check.why.append("not recorded in dvc.lock at the tag")
        return
    if check.rebuilt is None:
        check.why.append("the rebuild did not produce it")
        return
    old, new = _manifest(cache, check.recorded), _manifest(cache, check.rebuilt)
    if old is None or new is None:
        if check.recorded.endswith(".dir"):
            check.why.append(
                "the recorded output is not in the DVC cache (`dvc pull` to compare file by file)"
            )
        return
    check.files = sorted(p for p in set(old) | set(new) if old.get(p) != new.get(p))
    if "metadata.json" in check.files:
        before, after = _json_at(cache, old.get("metadata.json")), _json_at(cache, new.get(
            "metadata.json"
        ))  # fmt: skip
        if before is not None and after is not None:
            keys = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
            keys = [k for k in keys if k != "files"]
            if keys:
                check.why.append(f"metadata.json differs in {', '.join(keys)}")
            versions = (before.get("versions") or {}, after.get("versions") or {})
            moved = [
                f"{lib} {versions[0].get(lib)} -> {versions[1].get(lib)}"
                for lib in sorted(set(versions[0]) | set(versions[1]))
                if versions[0].get(lib) != versions[1].get(lib)
            ]
            if moved:
                check.why.append("built with other versions: " + ", ".join(moved))
    if "model.skops" in check.files:
        check.why.append("the fitted model's bytes differ")


def _lock_text_at(root: Path, rev: str) -> dict[str, Any]:
    text = git.show_file(root, rev, "dvc.lock")
    data = yaml.safe_load(text) if text else None
    return (data.get("stages") or {}) if isinstance(data, dict) else {}


def starting_lock(root: Path, commit: str, stages: list[str], limit: int = 500) -> str | None:
    """dvc.lock as it was when the run that produced `stages`' outputs at `commit` started.

    A validate stage compares its data with the profile the *previous* run recorded (read
    through the work tree's dvc.lock), an input dvc.lock does not list. The run that made the
    outputs recorded at `commit` started from the lock of the parent of the earliest
    first-parent ancestor that records the same outputs for those stages; None when there was
    no lock then (the first run)."""
    if not stages:
        return None

    def outs(lock: dict[str, Any]) -> list[Any]:
        return [(lock.get(s) or {}).get("outs") for s in stages]

    wanted = outs(_lock_text_at(root, commit))
    rev: str | None = commit
    for _ in range(limit):
        parent = git.rev_parse(root, f"{rev}^")
        text = git.show_file(root, parent, "dvc.lock") if parent else None
        if not text:
            return None
        data = yaml.safe_load(text)
        lock = (data.get("stages") or {}) if isinstance(data, dict) else {}
        if outs(lock) != wanted:
            return text
        rev = parent
    return None


def _version_commit(root: Path, spec: str) -> tuple[str, str, str, str]:
    from mlops.registry.lineage import parse_spec
    from mlops.registry.state import read_registry

    name, version = parse_spec(spec)
    art = read_registry(root).artifact(name)
    v = art.version(version)
    if v is None or not v.registered:
        known = ", ".join(x.version for x in art.registered_versions(active_only=False))
        raise GitStateError(
            f"{name} {version} is not registered (known versions: {known or 'none'})",
            f"`mlops registry show {name}` lists the versions.",
        )
    return name, version, v.commit, v.registration.tag if v.registration else ""


def reproduce(root: Path | str, spec: str, *, keep: bool = False) -> ReproduceResult:
    """Rebuild version `spec` (NAME@vX.Y.Z) in a scratch work tree and compare every output's
    hash with its `dvc.lock` (see the module's docstring). Raises `GitStateError` (exit 5) for
    an unknown version or a commit without dvc.lock, and the stage's error when one fails."""
    from mlops.pipeline.runner import StageResult, _stage_error

    project = load_project(root)
    root = project.root
    name, version, commit, tag = _version_commit(root, spec)
    text = git.show_file(root, commit, "dvc.lock")
    recorded_lock = (yaml.safe_load(text) or {}).get("stages", {}) if text else {}
    if not recorded_lock:
        raise GitStateError(
            f"{name} {version}'s commit {commit[:12]} has no dvc.lock: nothing to compare with",
            "Register versions from commits that hold their pipeline's results (mlops commit).",
        )
    result = ReproduceResult(name, version, commit, tag)
    dest = root / SCRATCH / f"{name}-{version}-{secrets.token_hex(3)}"
    dest.parent.mkdir(parents=True, exist_ok=True)
    log_dir = root / ".mlops" / "logs" / "reproduce" / dest.name
    log_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    git.worktree_add(root, dest, commit)
    try:
        local = root / ".dvc" / "config.local"
        if local.exists():
            shutil.copy2(local, dest / ".dvc" / "config.local")
        cache = Path(dvc.cache_dir(root))
        dvc.share_cache(dest, str(cache), log_dir / "config.log")
        scratch = load_project(dest)
        reading_previous = [n for n, st in scratch.stages.items() if st.kind == "validate"]
        start = starting_lock(root, commit, reading_previous)
        (dest / "dvc.lock").unlink(missing_ok=True)
        if start is not None:
            (dest / "dvc.lock").write_text(start, encoding="utf-8")
        here = os.getcwd()
        try:
            events = dvc.reproduce(dest, None, force=True, log_dir=log_dir)
        except dvc.ReproFailed as exc:
            failed = StageResult(exc.stage, "failed", log=str(exc.log or ""))
            failed.exit_status = exc.exit_status
            from mlops.pipeline.outcome import tail

            failed.tail = tail(exc.log)
            err = _stage_error(failed)
            raise type(err)(
                f"reproducing {name} {version}: {err.message}", err.hint, details=err.details
            ) from None
        finally:
            os.chdir(here)
        result.stages = [
            {"name": e.stage, "status": e.status, "seconds": round(e.seconds, 3)} for e in events
        ]
        restored = [e.stage for e in events if e.status != "ran"]
        if restored:  # force never consults the run cache; if it ever did, nothing is proved
            raise StageFailedError(
                f"stages {', '.join(restored)} were not recomputed ({events[0].status})",
                "Run `dvc repro --force` in a clone of the tag to rebuild by hand.",
            )
        rebuilt = _outs(read_lock(dest))
        for path, (stage, md5) in sorted(_outs(recorded_lock).items()):
            check = OutputCheck(path, stage, md5, rebuilt.get(path, (stage, None))[1])
            if not check.same:
                _explain(check, cache)
            result.outputs.append(check)
    finally:
        result.seconds = round(time.perf_counter() - t0, 3)
        if keep:
            result.kept = str(dest)
        else:
            git.worktree_remove(root, dest)
            shutil.rmtree(dest, ignore_errors=True)
    return result

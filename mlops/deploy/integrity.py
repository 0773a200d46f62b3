"""What an installed version is checked against: hashes git recorded, never files beside it.

A bundle's identity is DVC's directory hash (`<md5>.dir`): the md5 of the JSON list of
`{"md5", "relpath"}` of its files, sorted by path. `dvc.lock` records it for `models/<name>` in
the commit a registration tag names, so a directory whose files hash to that value is the
registered bundle byte for byte. `metadata.json` and `deployment.json` sit beside the model and
can be rewritten together with it: they are never the reference here.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path
from typing import Any

from mlops.errors import DeployError

MANIFEST = "manifest.json"
NOT_BUNDLE = frozenset({"deployment.json", MANIFEST})  # written at install, not in the bundle


class IntegrityError(DeployError):
    """An installed version does not match the hashes recorded for it (exit 6)."""


def file_hashes(path: Path) -> tuple[str, str, int]:
    """(md5, sha256, size) of one file."""
    md5 = hashlib.md5(usedforsecurity=False)
    sha = hashlib.sha256()
    size = 0
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            md5.update(block)
            sha.update(block)
            size += len(block)
    return md5.hexdigest(), sha.hexdigest(), size


def tree_hashes(root: Path) -> dict[str, dict[str, Any]]:
    """{relpath: {md5, sha256, size}} of the bundle files under `root` (symlinks refused)."""
    root = Path(root)
    out: dict[str, dict[str, Any]] = {}
    for p in sorted(root.rglob("*")):
        if p.is_symlink():
            raise IntegrityError(f"{p} is a symlink: an installed version holds plain files only")
        if not p.is_file():
            continue
        rel = p.relative_to(root).as_posix()
        if rel in NOT_BUNDLE:
            continue
        md5, sha, size = file_hashes(p)
        out[rel] = {"md5": md5, "sha256": sha, "size": size}
    return out


def dvc_dir_md5(md5s: dict[str, str]) -> str:
    """DVC's hash of a directory from its files' md5s (`<md5>.dir`, as dvc.lock records it)."""
    entries = [{"md5": md5, "relpath": rel} for rel, md5 in sorted(md5s.items())]
    text = json.dumps(entries, sort_keys=True).encode("utf-8")
    return hashlib.md5(text, usedforsecurity=False).hexdigest() + ".dir"


def recorded_md5(root: Path, commit: str, path: str) -> str | None:
    """The `<md5>.dir` that dvc.lock records for output `path` at git `commit`, or None."""
    import yaml

    try:
        text = subprocess.run(
            ["git", "show", f"{commit}:dvc.lock"],
            cwd=root,
            capture_output=True,
            check=True,
            timeout=60,
        ).stdout
        data = yaml.safe_load(text) or {}
    except (subprocess.SubprocessError, OSError, yaml.YAMLError):
        return None
    want = path.rstrip("/")
    for stage in (data.get("stages") or {}).values() if isinstance(data, dict) else ():
        for out in (stage or {}).get("outs") or [] if isinstance(stage, dict) else ():
            if isinstance(out, dict) and str(out.get("path", "")).rstrip("/") == want:
                md5 = out.get("md5")
                return str(md5) if md5 else None
    return None


def git_expected(root: Path, name: str, version: str, model_path: str) -> tuple[str, str]:
    """(`<md5>.dir`, where it came from) that git records for `name` `version`.

    From dvc.lock at the commit of the version's registration tag. Raises `IntegrityError`
    when the version is not registered here or its commit records no hash.
    """
    from mlops.registry.state import read_registry

    art = read_registry(root).get(name)
    v = art.version(version) if art else None
    if v is None or not v.registered:
        raise IntegrityError(
            f"{name} {version} is not registered in this repository, so it cannot be verified",
            "Fetch the tags (`git fetch --tags`) or deploy a registered version.",
        )
    tag = v.registration.tag if v.registration else version
    md5 = recorded_md5(root, v.commit, model_path)
    if md5 is None:
        raise IntegrityError(
            f"dvc.lock at {tag} ({v.commit[:12]}) records no hash for {model_path}",
            "Deploy a version registered from a committed `mlops run`.",
        )
    return md5, f"dvc.lock at {tag}"


def verify_tree(path: Path, expected_md5: str, source: str) -> dict[str, dict[str, Any]]:
    """Hash every bundle file under `path`; raise `IntegrityError` unless DVC's directory hash
    equals `expected_md5` (which came from `source`, named in the message)."""
    files = tree_hashes(path)
    got = dvc_dir_md5({rel: f["md5"] for rel, f in files.items()})
    if got != expected_md5:
        raise IntegrityError(
            f"{path} does not match the hash recorded in {source}: its files hash to "
            f"{got[:12]}…, {source} says {expected_md5[:12]}…; refusing to serve it",
            "The installed copy was altered: deploy the version again (`mlops deploy --env "
            "ENV --version V` reinstalls it) and find out who can write the target.",
        )
    return files


def verify_manifest(path: Path, manifest: dict[str, Any], shown: str | None = None) -> None:
    """Every file under `path` against a manifest's md5 and sha256 (no file more or less).

    `shown` is what messages call the copy (the stored version's URL, not a local download)."""
    files = tree_hashes(path)
    want = manifest.get("files")
    where = shown or str(path)
    if not isinstance(want, dict):
        raise IntegrityError(f"{where}: the manifest lists no files")
    problems = []
    for rel in sorted(set(want) | set(files)):
        w, g = want.get(rel), files.get(rel)
        if g is None:
            problems.append(f"{rel}: missing")
        elif not isinstance(w, dict):
            problems.append(f"{rel}: not in the manifest")
        elif g["md5"] != w.get("md5") or g["sha256"] != w.get("sha256"):
            problems.append(f"{rel}: content differs from the manifest")
    if problems:
        raise IntegrityError(
            f"{where} does not match its manifest: " + "; ".join(problems[:5]),
            "The stored version was altered or is incomplete: deploy it again.",
        )
    md5 = dvc_dir_md5({rel: f["md5"] for rel, f in files.items()})
    if md5 != manifest.get("dvc_md5"):
        raise IntegrityError(f"{where}: the manifest's directory hash does not match its files")

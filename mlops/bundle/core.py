"""Writing, verifying and loading model bundles."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlops.errors import ExitCode, MlopsError

METADATA = "metadata.json"
MODEL_FILE = "model.skops"
FORMAT = 1


class BundleError(MlopsError):
    """A bundle is missing, incomplete, or its files do not match their recorded hashes."""

    exit_code = ExitCode.DEPLOY_FAILED


@dataclass
class Bundle:
    path: Path
    metadata: dict[str, Any]
    model: Any
    schema: dict[str, Any]
    reference: dict[str, Any]

    @property
    def name(self) -> str:
        return self.metadata.get("name", self.path.name)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _fsync_write(path: Path, data: bytes) -> None:
    with open(path, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def write_bundle(dest: Path, files: dict[str, bytes], metadata: dict[str, Any]) -> dict[str, Any]:
    """Write a complete bundle at `dest`, replacing any previous one only once it is complete."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.parent / f".{dest.name}.tmp-{secrets.token_hex(4)}"
    tmp.mkdir()
    try:
        hashes = {}
        for name, data in sorted(files.items()):
            (tmp / name).parent.mkdir(parents=True, exist_ok=True)
            _fsync_write(tmp / name, data)
            hashes[name] = _sha256(data)
        meta = {"format": FORMAT, **metadata, "files": hashes}
        _fsync_write(tmp / METADATA, (json.dumps(meta, indent=2, default=str) + "\n").encode())
        old = None
        if dest.exists():
            old = dest.parent / f".{dest.name}.old-{secrets.token_hex(4)}"
            dest.rename(old)
        tmp.rename(dest)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        return meta
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def read_metadata(path: Path) -> dict[str, Any]:
    meta_path = Path(path) / METADATA
    try:
        return json.loads(meta_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BundleError(
            f"{path} is not a model bundle (no {METADATA})",
            "Run `mlops run` to build it, or `dvc pull` / `dvc checkout` to fetch it.",
        ) from None
    except ValueError as exc:
        raise BundleError(f"{meta_path} is not valid JSON: {exc}") from None


def verify_bundle(path: Path, *, extra_files: Collection[str] = ()) -> dict[str, Any]:
    """Check every file against the sha256 in metadata.json; return the metadata.

    `extra_files` names files that may sit beside the bundle's own without being listed (a
    deployment target adds `deployment.json` to each installed version).
    """
    path = Path(path)
    meta = read_metadata(path)
    recorded: dict[str, str] = meta.get("files") or {}
    problems = []
    for name, digest in sorted(recorded.items()):
        f = path / name
        if not f.is_file():
            problems.append(f"{name}: missing")
            continue
        h = hashlib.sha256()
        with open(f, "rb") as fh:
            while block := fh.read(1 << 20):
                h.update(block)
        if h.hexdigest() != digest:
            problems.append(f"{name}: sha256 {h.hexdigest()[:12]}… != recorded {digest[:12]}…")
    present = {
        str(p.relative_to(path)) for p in path.rglob("*") if p.is_file() and p.name != METADATA
    }
    for extra in sorted(present - set(recorded) - set(extra_files)):
        problems.append(f"{extra}: not listed in {METADATA}")
    if not recorded:
        problems.append(f"{METADATA} lists no files")
    if problems:
        raise BundleError(
            f"bundle {path} failed verification: " + "; ".join(problems),
            "The bundle was altered after it was built; rebuild it or fetch it again from the "
            "DVC remote.",
            details=problems,
        )
    return meta


def check_model_file(path: Path, trusted_types: Collection[str] = ()) -> list[str]:
    """Every type name of the skops file at `path`, once all are allowed (`mlops.bundle.trust`);
    `BundleError` (exit 6) naming each refused type otherwise. Builds no object of the file."""
    import zipfile

    from mlops.bundle.trust import audit

    try:
        refused, names = audit(path, trusted_types)
    except (OSError, ValueError, KeyError, RecursionError, zipfile.BadZipFile) as exc:
        raise BundleError(
            f"{path} is not a readable skops model file: {type(exc).__name__}: {exc}"[:500],
            "Rebuild the bundle with `mlops run`, or fetch it again from the DVC remote.",
        ) from None
    if refused:
        raise BundleError(
            f"{path} contains types mlops does not load: {', '.join(refused)}",
            "mlops loads scikit-learn estimators, NumPy/SciPy data and plain Python data only. "
            "If a type is your project's own class and you trust it, list its exact name "
            "under `model.trusted_types:` in pipeline.yaml; never list a function.",
            details=refused,
        )
    return names


def load_model_file(path: Path, trusted_types: Collection[str] = ()) -> Any:
    """Load a skops file whose every type is on the allow-list (`mlops.bundle.trust`).

    `trusted_types` are the project's own exact type names (`model.trusted_types` in
    pipeline.yaml). Anything else, or a file that does not load, raises `BundleError` (exit 6)
    before any object of the file is built.
    """
    import skops.io as sio

    names = check_model_file(path, trusted_types)
    try:
        return sio.load(path, trusted=names)
    except Exception as exc:  # a malformed or hostile file: refused, never a crash
        raise BundleError(
            f"{path} cannot be loaded: {type(exc).__name__}: {exc}"[:500],
            "Rebuild the bundle with `mlops run`, or fetch it again from the DVC remote.",
        ) from None


def load_bundle(
    path: Path,
    *,
    extra_files: Collection[str] = (),
    trusted_types: Collection[str] = (),
    code_root: Path | None = None,
) -> Bundle:
    """Verify, then load a bundle (model, schema, reference statistics, metadata).

    `trusted_types`: the project's own exact type names the model may contain (see
    `load_model_file`). A bundle that pins project code (`mlops.bundle.codepin`) loads only
    when the installed code (in `code_root`, the project root, else on `sys.path`) has the
    recorded hashes: `CodeMismatchError` (exit 6) otherwise."""
    from mlops.bundle.codepin import verify_code

    path = Path(path)
    meta = verify_bundle(path, extra_files=extra_files)
    verify_code(meta.get("code"), code_root, path)

    def _json(name: str) -> dict[str, Any]:
        f = path / name
        return json.loads(f.read_text()) if f.exists() else {}

    model = load_model_file(path / MODEL_FILE, trusted_types)
    return Bundle(path, meta, model, _json("schema.json"), _json("reference.json"))

"""Where a server's versions come from: a local target's `current`, or an object-store target's
pointer followed into a local cache. Both verify before anything is loaded.

- `LocalSource`: `current` must name `versions/<v>`; in a git checkout the version's files must
  hash to what dvc.lock recorded at its registration tag (`mlops.deploy.integrity`).
- `RemoteSource`: the pointer is polled by ETag (one HEAD request per poll). A new version is
  downloaded once per host into `<cache>/versions/<v>-<hash>/` under a file lock (workers of one
  server share it), verified against its manifest, the manifest against the pointer, and, in a
  checkout, the pointer's hash against git. Without a checkout (a pod), the pointer and the
  manifest are the reference: whoever can write the bucket can deploy.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from mlops.deploy.integrity import IntegrityError, verify_manifest, verify_tree
from mlops.deploy.remote import RemoteTarget, name_stored_copy
from mlops.deploy.storage import StorageError
from mlops.deploy.target import Target
from mlops.errors import MlopsError

# version name -> (expected `<md5>.dir`, where it was recorded), or None when there is no git
Expected = Callable[[str], tuple[str, str]] | None


def git_expectation(root: str | None, name: str | None, model_path: str | None) -> Expected:
    """The hashes git records for a version, when serving from a checkout."""
    if not root or not name or not model_path:
        return None

    def expected(version: str) -> tuple[str, str]:
        from mlops.deploy.integrity import git_expected

        return git_expected(Path(root), name, version, model_path)

    return expected


@contextlib.contextmanager
def _flock(path: Path) -> Iterator[None]:
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


class LocalSource:
    """A local target's `current` (a symlink to `versions/<v>`)."""

    def __init__(self, target: Target, expected: Expected = None) -> None:
        self.target = target
        self.expected = expected
        self.status: dict[str, Any] = {"reachable": True}

    def peek(self) -> tuple[tuple, Any] | None:
        """(key, handle) of what `current` names now, or None when nothing is deployed."""
        path = self.target.current_dir()  # raises IntegrityError outside versions/
        if path is None:
            return None
        try:
            return (path.name, os.stat(path).st_ino), path
        except OSError:
            return None

    @contextlib.contextmanager
    def naming(self, local: Path, version: str) -> Iterator[None]:
        """Errors about a version loaded from here name its directory as they do."""
        yield

    def materialize(self, handle: Any) -> Path:
        """The verified directory to load."""
        path = Path(handle)
        if self.expected is not None:
            md5, source = self.expected(path.name)
            verify_tree(path, md5, source)
        return path


class RemoteSource:
    """An object-store target's pointer, followed into a local cache."""

    def __init__(self, target: RemoteTarget, cache: Path, expected: Expected = None) -> None:
        self.target = target
        self.cache = Path(cache)
        self.expected = expected
        self._etag: str | None = None
        self._pointer: dict[str, Any] | None = None
        self.status: dict[str, Any] = {"reachable": True}

    def _mark(self, exc: StorageError | None) -> None:
        if exc is None:
            self.status = {"reachable": True, "checked_at": time.time()}
        elif self.status.get("reachable", True):
            self.status = {"reachable": False, "error": exc.message, "since": time.time()}
        else:
            self.status["error"] = exc.message

    def peek(self) -> tuple[tuple, Any] | None:
        """(key, pointer) of the version the pointer names, or None when nothing is deployed.

        One HEAD request when the pointer did not change. Raises `StorageError` when the store
        cannot be reached, `IntegrityError` for a pointer that names no version.
        """
        try:
            etag = self.target.pointer_etag()
            if etag is None:
                self._etag, self._pointer = None, None
            elif etag != self._etag or self._pointer is None:
                self._pointer = self.target.pointer()
                self._etag = etag
        except StorageError as exc:
            self._mark(exc)
            raise
        self._mark(None)
        if self._pointer is None:
            return None
        p = self._pointer
        return (p["version"], p["manifest_sha256"]), dict(p)

    @contextlib.contextmanager
    def naming(self, local: Path, version: str) -> Iterator[None]:
        """Errors about the cached copy `local` of `version` name the stored version instead
        (`s3://bucket/prefix/versions/<v>`), not a path on this host."""
        try:
            yield
        except MlopsError as exc:
            name_stored_copy(exc, local, f"{self.target.root}/versions/{version}")
            raise

    def materialize(self, handle: Any) -> Path:
        """Download (once per host) and verify the version `handle` (a pointer) names."""
        pointer: dict[str, Any] = handle
        version = pointer["version"]
        if self.expected is not None:
            md5, source = self.expected(version)
            if pointer["dvc_md5"] != md5:
                raise IntegrityError(
                    f"{self.target.root}/current says {version} is {pointer['dvc_md5'][:12]}…, "
                    f"{source} says {md5[:12]}…: refused",
                    "Deploy the version again from CI, and find out who can write the bucket.",
                )
        dest = self.cache / "versions" / f"{version}-{pointer['manifest_sha256'][:16]}"
        with _flock(self.cache / ".lock"):
            if dest.is_dir():
                with contextlib.suppress(IntegrityError, OSError, ValueError):
                    self._check_cached(dest, pointer)
                    return dest
                shutil.rmtree(dest, ignore_errors=True)
            tmp = dest.with_name(f".tmp-{dest.name}-{os.getpid()}")
            shutil.rmtree(tmp, ignore_errors=True)
            try:
                try:
                    manifest = self.target.download(version, tmp, pointer)
                except StorageError as exc:
                    self._mark(exc)
                    raise
                _manifest_of(dest).write_text(json.dumps(manifest), encoding="utf-8")
                os.replace(tmp, dest)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
        return dest

    def _check_cached(self, dest: Path, pointer: dict[str, Any]) -> None:
        """A cached copy is re-verified against the pointer before it is loaded again."""
        manifest = json.loads(_manifest_of(dest).read_text(encoding="utf-8"))
        if manifest.get("dvc_md5") != pointer["dvc_md5"]:
            raise IntegrityError(f"{dest}: cached copy is not the version `current` names")
        verify_manifest(dest, manifest)


def _manifest_of(dest: Path) -> Path:
    """The cached copy's manifest, beside it (the version directory holds the bundle only)."""
    return dest.with_name(dest.name + ".manifest.json")


def default_cache(url: str) -> Path:
    """Where a server caches the versions of `url` (`$MLOPS_CACHE_DIR`, else ~/.cache/mlops)."""
    base = os.environ.get("MLOPS_CACHE_DIR") or str(Path.home() / ".cache" / "mlops")
    return Path(base) / "targets" / hashlib.sha256(url.encode()).hexdigest()[:16]

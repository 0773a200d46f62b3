"""A local deployment target: verified versions side by side, `current` switched atomically.

Layout (documented in docs/architecture.md, "Deployment target layout")::

    <target>/
      versions/<version>/        a complete, verified copy of a bundle + deployment.json
      current -> versions/<v>    relative symlink, replaced atomically (temp symlink + os.replace)
      history.jsonl              one JSON object per deployment event, appended
      predictions/               the prediction log written by `mlops serve` (mlops.serve.log)
      .lock                      flock'ed by `Target.lock()` while a deployment changes the target

A version directory is never modified once installed (a damaged copy is replaced whole, see
`Target.install`), so a server can load it while another one
is being installed beside it; `mlops serve --env` follows `current`.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import secrets
import shutil
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mlops.bundle import METADATA, Bundle, load_bundle, verify_bundle
from mlops.deploy.faults import checkpoint
from mlops.deploy.integrity import IntegrityError
from mlops.errors import DeployError, GitStateError, MlopsError, UsageError

DEPLOYMENT = "deployment.json"
VERSIONS = "versions"
CURRENT = "current"
HISTORY = "history.jsonl"
PREDICTIONS = "predictions"
JOURNAL = ".deploy-journal.json"
FETCH_PREFIX = ".fetch-"
LEFTOVERS = (  # (directory relative to the target, name prefix) of temporary files
    ("versions", ".tmp-"),
    ("versions", ".old-"),
    (".", FETCH_PREFIX),
    (".", ".current.tmp-"),
)
VERSION_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$")


class NotDeployedError(GitStateError):
    """The target exists but nothing is deployed to it (or it does not exist yet)."""


def now_iso() -> str:
    """The current UTC time as ISO 8601 with seconds (`2024-05-01T12:00:00+00:00`)."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def check_version(version: str) -> str:
    """A version name usable as a directory name (`v1.2.3`, `v1.2.3+build.4`)."""
    if not isinstance(version, str) or not VERSION_PATTERN.match(version) or ".." in version:
        raise UsageError(
            f"invalid version name {version!r}",
            "Use letters, digits and . _ + - only, such as v1.2.3.",
        )
    return version


@dataclass(frozen=True)
class Target:
    """One environment's deployment directory."""

    root: Path

    @property
    def versions_dir(self) -> Path:
        """`versions/`: one directory per installed version."""
        return self.root / VERSIONS

    @property
    def current_link(self) -> Path:
        """`current`: the symlink to the version being served."""
        return self.root / CURRENT

    @property
    def history_file(self) -> Path:
        """`history.jsonl`: one deployment event per line."""
        return self.root / HISTORY

    @property
    def predictions_dir(self) -> Path:
        """`predictions/`: the prediction log of `mlops serve`."""
        return self.root / PREDICTIONS

    # ---- reading ------------------------------------------------------------------------

    def current_link_text(self) -> str | None:
        """What `current` points at (`versions/v1.2.3`), or None when nothing is deployed."""
        try:
            return os.readlink(self.current_link)
        except (FileNotFoundError, OSError):
            return None

    def current_dir(self) -> Path | None:
        """The directory of the current version, or None when nothing is deployed.

        Raises `IntegrityError` when `current` names anything but `versions/<version>` (a
        path outside the target, an absolute path, a symlinked version directory).
        """
        link = self.current_link_text()
        if link is None:
            return None
        head, _, version = link.partition("/")
        if head != VERSIONS or not VERSION_PATTERN.match(version) or ".." in version:
            raise IntegrityError(
                f"{self.current_link} points at {link[:120]!r}, outside {VERSIONS}/: refused",
                "Deploy again (`mlops deploy --env ENV`) to rewrite it, and find out who can "
                "write the target.",
            )
        path = self.versions_dir / version
        if path.is_symlink():
            raise IntegrityError(f"{path} is a symlink, not an installed version: refused")
        return path if path.is_dir() else None

    def current_version(self) -> str | None:
        """The name of the current version, or None when nothing is deployed."""
        path = self.current_dir()
        return path.name if path is not None else None

    def require_current(self) -> Path:
        """The current version's directory; `NotDeployedError` when there is none."""
        path = self.current_dir()
        if path is None:
            raise NotDeployedError(
                f"nothing is deployed to {self.root}",
                "Deploy a version first (`mlops deploy --env ENV`), or serve a bundle with "
                "`mlops serve --bundle models/NAME`.",
            )
        return path

    def version_dir(self, version: str) -> Path:
        """The directory of an installed version (the name is checked)."""
        return self.versions_dir / check_version(version)

    def versions(self) -> list[str]:
        """Installed versions (complete ones only), sorted by name."""
        if not self.versions_dir.is_dir():
            return []
        return sorted(
            p.name
            for p in self.versions_dir.iterdir()
            if p.is_dir() and not p.name.startswith(".") and (p / DEPLOYMENT).is_file()
        )

    def deployment(self, version: str | None = None) -> dict[str, Any] | None:
        """deployment.json of `version` (default: the current one), or None."""
        path = self.current_dir() if version is None else self.version_dir(version)
        return read_deployment(path) if path is not None else None

    def load(self, version: str | None = None, trusted_types: Collection[str] = ()) -> Bundle:
        """Verify every hash, then load a version (default: the current one); the model's types
        must be on the allow-list or in `trusted_types` (`mlops.bundle.trust`)."""
        path = self.require_current() if version is None else self.version_dir(version)
        return load_bundle(path, extra_files=(DEPLOYMENT,), trusted_types=trusted_types)

    def history(self) -> list[dict[str, Any]]:
        """Every deployment event, oldest first (lines that are not JSON objects are skipped)."""
        try:
            text = self.history_file.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        events = []
        for line in text.splitlines():
            with contextlib.suppress(ValueError):
                event = json.loads(line)
                if isinstance(event, dict):
                    events.append(event)
        return events

    def has_version(self, version: str) -> bool:
        """Whether `versions/<version>` exists (complete or not)."""
        return self.version_dir(version).is_dir()

    def complete(self, version: str) -> bool:
        """Whether `versions/<version>` is installed and every file matches its hash."""
        path = self.version_dir(version)
        if not (path / DEPLOYMENT).is_file():
            return False
        try:
            verify_bundle(path, extra_files=(DEPLOYMENT,))
        except MlopsError:
            return False
        return True

    def scratch_dir(self, prefix: str) -> Path:
        """A new, absent path inside the target (same filesystem: renames stay atomic)."""
        return self.root / f"{FETCH_PREFIX}{prefix}{secrets.token_hex(4)}"

    # ---- changing -----------------------------------------------------------------------

    def read_journal(self) -> dict[str, Any] | None:
        """The journal of an interrupted deploy ({} when torn), or None."""
        try:
            data = json.loads((self.root / JOURNAL).read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return {}  # a torn journal: a deploy was interrupted, details unknown
        return data if isinstance(data, dict) else {}

    def write_journal(self, data: dict[str, Any]) -> None:
        """Write the journal of the deploy in progress (atomically)."""
        tmp = self.root / f"{JOURNAL}.tmp-{secrets.token_hex(4)}"
        tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, self.root / JOURNAL)

    def drop_journal(self) -> None:
        """Remove the journal."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.root / JOURNAL)

    def remove_version(self, version: str) -> None:
        """Delete `versions/<version>`."""
        shutil.rmtree(self.version_dir(version), ignore_errors=True)

    def clear_current(self) -> None:
        """Remove `current` (nothing live)."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.current_link)

    def remove_leftovers(self) -> list[str]:
        """Remove the temporary files a killed deploy left; their paths relative to the root."""
        removed = []
        for folder, prefix in LEFTOVERS:
            base = self.root / folder
            if not base.is_dir():
                continue
            for p in sorted(base.iterdir()):
                if not p.name.startswith(prefix):
                    continue
                if p.is_symlink() or p.is_file():
                    p.unlink(missing_ok=True)
                else:
                    shutil.rmtree(p, ignore_errors=True)
                removed.append(str(p.relative_to(self.root)))
        with contextlib.suppress(OSError):
            for p in self.root.glob(f"{JOURNAL}.tmp-*"):
                p.unlink(missing_ok=True)
        return removed

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold an exclusive lock on the target: another deployment waits (bounded, with a
        message), then stops with exit 5 naming the holder; a read-only target is exit 6."""
        from mlops.adapters.lock import hold

        hint = f"Make {self.root} writable by the user that deploys."
        with hold(
            self.root / ".lock",
            what=f"the deployment target {self.root}",
            unwritable=DeployError,
            unwritable_hint=hint,
        ):
            try:
                yield
            except OSError as exc:
                if exc.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
                    raise
                raise DeployError(f"cannot write to the deployment target: {exc}", hint) from exc

    def install(
        self,
        bundle: Path,
        version: str,
        *,
        name: str | None = None,
        commit: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> Path:
        """Copy a bundle into `versions/<version>/`, verified, complete or not at all.

        The bundle is verified, copied to a temporary directory beside the versions, verified
        again there, given its deployment.json, and renamed into place. Installing the same
        bundle again as the same version is a no-op; different content under the name of the
        current version is refused (a deployed version never changes).

        An installed copy of this very bundle whose files no longer match their hashes
        (altered or damaged on disk) is repaired, live or not: a verified copy is built beside
        it, keeping its deployment.json, and exchanged with it in one `renameat2` call, so
        `current` never names a half-repaired directory. The repaired directory is a new inode,
        which is what makes a server following the target load it again.
        """
        check_version(version)
        bundle = Path(bundle)
        meta = verify_bundle(bundle)
        self.versions_dir.mkdir(parents=True, exist_ok=True)
        dest = self.versions_dir / version
        if dest.is_dir() and _same_bundle(dest, bundle):
            return dest
        repair = dest.is_dir() and _installed_from(dest, bundle, extra)
        if dest.exists() and not repair and self.current_version() == version:
            raise DeployError(
                f"version {version} is deployed in {self.root} with different content",
                "A version's content never changes: register a new version and deploy that.",
            )
        tmp = self.versions_dir / f".tmp-{version}-{secrets.token_hex(4)}"
        try:
            shutil.copytree(bundle, tmp, ignore=shutil.ignore_patterns(DEPLOYMENT))
            verify_bundle(tmp)
            kept = _kept_record(dest, version) if repair else None
            record = {
                "name": name or meta.get("name") or bundle.name,
                "version": version,
                "commit": commit or (meta.get("git") or {}).get("commit"),
                "deployed_at": now_iso(),
                "source": str(bundle),
                **(extra or {}),
            }
            (tmp / DEPLOYMENT).write_bytes(
                kept or (json.dumps(record, indent=2) + "\n").encode("utf-8")
            )
            for f in tmp.rglob("*"):
                if f.is_file():
                    with open(f, "rb") as fh:
                        os.fsync(fh.fileno())
            checkpoint("install-copied")
            if repair and exchange_dirs(tmp, dest):  # tmp now holds the damaged copy
                _fsync_dir(self.versions_dir)
                shutil.rmtree(tmp, ignore_errors=True)
                return dest
            old = None
            if dest.exists():
                old = self.versions_dir / f".old-{version}-{secrets.token_hex(4)}"
                dest.rename(old)
            tmp.rename(dest)
            _fsync_dir(self.versions_dir)
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return dest

    def switch(self, version: str) -> str | None:
        """Point `current` at an installed version atomically; return the previous version."""
        dest = self.version_dir(version)
        if not (dest / DEPLOYMENT).is_file() or not (dest / METADATA).is_file():
            raise DeployError(
                f"version {version} is not installed in {self.root}",
                f"Install it first; installed versions: {', '.join(self.versions()) or 'none'}.",
            )
        previous = self.current_version()
        tmp = self.root / f".{CURRENT}.tmp-{secrets.token_hex(4)}"
        os.symlink(f"{VERSIONS}/{version}", tmp)
        checkpoint("switch-linked")
        try:
            os.replace(tmp, self.current_link)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        _fsync_dir(self.root)
        return previous

    def append_history(self, event: dict[str, Any]) -> dict[str, Any]:
        """Append one event (a `ts` is added when missing) to history.jsonl, durably."""
        record = {"ts": now_iso(), **event}
        line = (json.dumps(record, default=str, separators=(",", ":")) + "\n").encode()
        self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.history_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)  # one write on an O_APPEND file: lines never interleave
            os.fsync(fd)
        finally:
            os.close(fd)
        return record


def _same_bundle(a: Path, b: Path) -> bool:
    try:
        return (a / METADATA).read_bytes() == (b / METADATA).read_bytes() and bool(
            verify_bundle(a, extra_files=(DEPLOYMENT,))
        )
    except (OSError, MlopsError):
        return False


def _installed_from(dest: Path, bundle: Path, extra: dict[str, Any] | None) -> bool:
    """Whether the installed `dest` was installed from this very bundle: the same metadata.json,
    or the same directory hash git recorded (`dvc_md5`, written by `mlops deploy`)."""
    with contextlib.suppress(OSError):
        if (dest / METADATA).read_bytes() == (bundle / METADATA).read_bytes():
            return True
    md5 = (extra or {}).get("dvc_md5")
    record = read_deployment(dest)
    return bool(md5) and record is not None and record.get("dvc_md5") == md5


def _kept_record(dest: Path, version: str) -> bytes | None:
    """The deployment.json of a copy being repaired, when it still reads as this version's."""
    record = read_deployment(dest)
    if record is None or record.get("version") != version:
        return None
    return (dest / DEPLOYMENT).read_bytes()


def exchange_dirs(a: Path, b: Path) -> bool:
    """Swap two directories in one atomic `renameat2(RENAME_EXCHANGE)` (Linux, glibc 2.28+);
    False when the system or filesystem cannot (the caller then renames twice)."""
    import ctypes

    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    if fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
        return False
    raise OSError(err, os.strerror(err), str(b))


def read_deployment(path: Path) -> dict[str, Any] | None:
    """The deployment.json of an installed version directory, or None if absent or unreadable."""
    try:
        data = json.loads((Path(path) / DEPLOYMENT).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def open_target(path: Path | str, *, create: bool = False) -> Target:
    """The target at `path`; with `create`, make its directories first."""
    root = Path(path).absolute()
    if create:
        (root / VERSIONS).mkdir(parents=True, exist_ok=True)
    elif not root.is_dir():
        raise NotDeployedError(
            f"deployment target {root} does not exist",
            "Deploy a version to this environment first (`mlops deploy --env ENV`).",
        )
    return Target(root)


def is_target(path: Path | str) -> bool:
    """Whether `path` looks like a deployment target (has `versions/` or `current`)."""
    p = Path(path)
    return (p / VERSIONS).is_dir() or (p / CURRENT).is_symlink()

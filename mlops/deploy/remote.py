"""A deployment target in object storage: the local target's layout and guarantees, as objects.

Layout (docs/architecture.md, "Deployment target layout")::

    <url>/versions/<v>/<bundle files>   uploaded first
    <url>/versions/<v>/deployment.json  {name, version, commit, deployed_at, ...}
    <url>/versions/<v>/manifest.json    written last: md5, sha256 and size of every file, DVC's
                                        directory hash, deployment.json's sha256
    <url>/current                       the pointer, written after the version was read back and
                                        verified: {version, dvc_md5, manifest_sha256, written_at}
    <url>/events/<ts>-<random>.json     one object per deployment event, created If-None-Match
    <url>/deploy-journal.json           a deploy in progress (repaired by the next deploy)
    <url>/deploy-lock/<n>.json          the deploy lease, generation n (If-None-Match create);
    <url>/deploy-lock/<n>.released      written by its holder on release (see `lock`)
    <url>/logs/<host>/, feedback/<host>/  the serving hosts' prediction logs (mlops.serve.segments)

Object stores have no rename: a version is "installed" once its manifest exists, and only the
`current` pointer (one PUT, atomic for readers) makes it live.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import shutil
import socket
import tempfile
import time
import weakref
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

from mlops.bundle import verify_bundle
from mlops.deploy.faults import checkpoint
from mlops.deploy.integrity import (
    MANIFEST,
    IntegrityError,
    dvc_dir_md5,
    tree_hashes,
    verify_manifest,
)
from mlops.deploy.storage import Store, open_store, parse_target
from mlops.deploy.target import DEPLOYMENT, Target, check_version, now_iso
from mlops.errors import DeployError, MlopsError

CURRENT = "current"
VERSIONS = "versions"
EVENTS = "events"
JOURNAL = "deploy-journal.json"
LOCK = "deploy-lock"  # lease generations: <n>.json (claimed), <n>.released
LEASE_SECONDS = 30 * 60


def _json(data: dict[str, Any]) -> bytes:
    return (json.dumps(data, indent=2, sort_keys=True, default=str) + "\n").encode()


def parse_pointer(raw: bytes, where: str) -> dict[str, Any]:
    """The `current` pointer's fields, checked: a version name (never a path), two hashes."""
    try:
        data = json.loads(raw)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise IntegrityError(f"{where}/current is not a JSON object", "Deploy again to rewrite it.")
    version = data.get("version")
    try:
        check_version(version)  # type: ignore[arg-type]
    except MlopsError:
        raise IntegrityError(
            f"{where}/current names {str(version)[:80]!r}, which is not a version under "
            "versions/: refused",
            "Deploy again to rewrite the pointer, and find out who can write the target.",
        ) from None
    for key in ("dvc_md5", "manifest_sha256"):
        if not isinstance(data.get(key), str) or not data[key]:
            raise IntegrityError(f"{where}/current has no {key}", "Deploy again to rewrite it.")
    return data


def _safe_rel(rel: Any) -> str:
    p = PurePosixPath(str(rel))
    if not isinstance(rel, str) or p.is_absolute() or ".." in p.parts or not p.parts:
        raise IntegrityError(f"the manifest lists {str(rel)[:80]!r}, not a relative file name")
    return p.as_posix()


class RemoteTarget:
    """One environment's deployment target in object storage (same methods as `Target`)."""

    is_remote = True

    def __init__(self, store: Store) -> None:
        self.store = store
        self.root = store.display
        self._tmp: Path | None = None
        self._held: int | None = None  # the lease generation this object holds, if any

    def __repr__(self) -> str:
        return f"RemoteTarget({self.root})"

    # ---- reading ------------------------------------------------------------------------

    def pointer(self) -> dict[str, Any] | None:
        """The `current` pointer (checked), or None when nothing is deployed."""
        raw = self.store.read_bytes(CURRENT)
        return None if raw is None else parse_pointer(raw, self.root)

    def pointer_etag(self) -> str | None:
        """The pointer's ETag (a cheap change check)."""
        return self.store.etag(CURRENT)

    def current_version(self) -> str | None:
        """The version the pointer names, or None."""
        p = self.pointer()
        return p["version"] if p else None

    def versions(self) -> list[str]:
        """Installed versions (those whose manifest exists), sorted."""
        out = set()
        for key in self.store.list(VERSIONS):
            parts = key.split("/")
            if len(parts) == 3 and parts[2] == MANIFEST:
                out.add(parts[1])
        return sorted(out)

    def has_version(self, version: str) -> bool:
        """Whether any object exists under `versions/<version>/`."""
        return bool(self.store.list(f"{VERSIONS}/{check_version(version)}"))

    def manifest(self, version: str) -> tuple[bytes, dict[str, Any]] | None:
        """(bytes, parsed) of a version's manifest, or None when it has none."""
        raw = self.store.read_bytes(f"{VERSIONS}/{check_version(version)}/{MANIFEST}")
        if raw is None:
            return None
        try:
            data = json.loads(raw)
        except ValueError:
            data = None
        if not isinstance(data, dict) or not isinstance(data.get("files"), dict):
            raise IntegrityError(f"{self.root}/versions/{version}/{MANIFEST} is not a manifest")
        return raw, data

    def download(
        self, version: str, dest: Path, pointer: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Download `versions/<version>` into `dest` (absent) and verify every byte against
        its manifest, and the manifest against `pointer` when given. Returns the manifest."""
        found = self.manifest(version)
        if found is None:
            raise IntegrityError(f"{self.root}/versions/{version} has no manifest (incomplete)")
        raw, manifest = found
        if pointer is not None:
            if hashlib.sha256(raw).hexdigest() != pointer["manifest_sha256"]:
                raise IntegrityError(
                    f"{self.root}/versions/{version}/{MANIFEST} does not match the hash in "
                    "`current`: refused",
                    "The stored version was altered: deploy it again.",
                )
            if manifest.get("dvc_md5") != pointer["dvc_md5"]:
                raise IntegrityError(f"{self.root}: the manifest and `current` disagree")
        dest = Path(dest)
        dest.mkdir(parents=True)
        prefix = f"{VERSIONS}/{version}/"
        for rel in manifest["files"]:
            rel = _safe_rel(rel)
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            self.store.get_file(prefix + rel, dest / rel)
        deployment = self.store.read_bytes(prefix + DEPLOYMENT)
        if deployment is None or (
            hashlib.sha256(deployment).hexdigest() != manifest.get("deployment_sha256")
        ):
            raise IntegrityError(f"{self.root}/{prefix}{DEPLOYMENT} does not match its manifest")
        (dest / DEPLOYMENT).write_bytes(deployment)
        verify_manifest(dest, manifest, shown=f"{self.root}/{prefix}".rstrip("/"))
        return manifest

    def complete(self, version: str) -> bool:
        """Whether `versions/<version>` is installed and every byte matches its manifest."""
        try:
            self.download(version, self.scratch_dir("check-"))
        except MlopsError:
            return False
        return True

    def deployment(self, version: str | None = None) -> dict[str, Any] | None:
        """deployment.json of `version` (default: the current one), or None."""
        version = version or self.current_version()
        if version is None:
            return None
        raw = self.store.read_bytes(f"{VERSIONS}/{check_version(version)}/{DEPLOYMENT}")
        try:
            data = json.loads(raw) if raw else None
        except ValueError:
            return None
        return data if isinstance(data, dict) else None

    def history(self) -> list[dict[str, Any]]:
        """Every deployment event, oldest first (unreadable objects are skipped)."""
        events = []
        for key in self.store.list(EVENTS):
            with contextlib.suppress(ValueError, MlopsError):
                event = json.loads(self.store.read_bytes(key) or b"")
                if isinstance(event, dict):
                    events.append(event)
        return events

    # ---- local scratch space ------------------------------------------------------------

    def scratch_dir(self, prefix: str) -> Path:
        """A new, absent local path in a temporary directory removed with this object."""
        if self._tmp is None:
            self._tmp = new_scratch_root()
            weakref.finalize(self, shutil.rmtree, self._tmp, True)
        return self._tmp / f"{prefix}{secrets.token_hex(4)}"

    # ---- changing -----------------------------------------------------------------------

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """A lease on the target; waits while another deploy holds it.

        Leases are numbered generations, each claimed by an exclusive create (If-None-Match:
        *) of `deploy-lock/<n>.json`, so at most one process ever claims generation n. The
        highest generation is the lease: it is free once its holder wrote `<n>.released`, or
        when it is stale (its holder died on this host, or it expired after 30 minutes); then
        waiters race to create n+1 and exactly one wins. Nothing live is ever deleted or
        overwritten, so two waiters that saw the same stale lease cannot both take it over (a
        delete-then-create takeover could). A winner that finds a higher generation than its
        own after claiming (it slept through several) releases its claim and waits again.
        """
        me = {
            "token": secrets.token_hex(8),
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "expires": time.time() + LEASE_SECONDS,
        }
        while True:
            head, held, free = self._lease_head()
            if free or _stale(held):
                mine = head + 1
                if self.store.write_bytes(_lease_key(mine), _json(me), exclusive=True):
                    if self._lease_head()[0] == mine:
                        break
                    self._release(mine)  # an older generation than the live one: give it up
                continue
            time.sleep(1.0)
        self._forget_leases(mine)
        self._held = mine
        try:
            yield
        finally:
            self._held = None
            with contextlib.suppress(MlopsError):
                self._release(mine)

    def _fence(self) -> None:
        """Refuse to change the live state when this holder's lease was taken over.

        A holder that is still alive after its lease expired (a deploy stalled for more than
        LEASE_SECONDS) may find that another deploy claimed a newer generation meanwhile; it must
        then not write the pointer or the journal over the newer holder's. The check costs one
        LIST before each such write; what remains is the window between that LIST and the write.
        """
        if self._held is None:
            return
        head = self._lease_head()[0]
        if head != self._held:
            raise DeployError(
                f"the deploy lease on {self.root} expired and generation {head} took it over "
                f"(this deploy held generation {self._held}); nothing was switched",
                "A deploy stalled past its lease. Check the target with `mlops envs`, then run "
                "the deploy again if it is still wanted.",
            )

    def _lease_head(self) -> tuple[int, dict[str, Any], bool]:
        """(highest generation, its lease record, whether it is free)."""
        claimed: set[int] = set()
        released: set[int] = set()
        for key in self.store.list(LOCK):
            stem, _, kind = key.rsplit("/", 1)[-1].partition(".")
            if stem.isdigit() and len(stem) == 12:
                (claimed if kind == "json" else released if kind == "released" else set()).add(
                    int(stem)
                )
        if not claimed:
            return max(released, default=0), {}, True
        head = max(claimed)
        if head in released:
            return head, {}, True
        try:
            held = json.loads(self.store.read_bytes(_lease_key(head)) or b"{}")
        except ValueError:
            held = {}
        return head, held if isinstance(held, dict) else {}, False

    def _release(self, generation: int) -> None:
        self.store.write_bytes(f"{LOCK}/{generation:012d}.released", b"", exclusive=True)

    def _forget_leases(self, mine: int) -> None:
        """Delete generations older than the one before `mine` (the two newest stay)."""
        old = []
        for key in self.store.list(LOCK):
            stem = key.rsplit("/", 1)[-1].partition(".")[0]
            if stem.isdigit() and int(stem) < mine - 1:
                old.append(key)
        with contextlib.suppress(MlopsError):
            self.store.delete(old)

    def read_journal(self) -> dict[str, Any] | None:
        """The journal of an interrupted deploy ({} when unreadable), or None."""
        raw = self.store.read_bytes(JOURNAL)
        if raw is None:
            return None
        try:
            data = json.loads(raw)
        except ValueError:
            return {}
        return data if isinstance(data, dict) else {}

    def write_journal(self, data: dict[str, Any]) -> None:
        """Write the journal of the deploy in progress."""
        self._fence()
        self.store.write_bytes(JOURNAL, _json(data))

    def drop_journal(self) -> None:
        """Remove the journal."""
        self._fence()
        self.store.delete([JOURNAL])

    def remove_version(self, version: str) -> None:
        """Delete every object under `versions/<version>/`."""
        keys = self.store.list(f"{VERSIONS}/{check_version(version)}")
        # the manifest first: an interrupted removal leaves an incomplete version, never a
        # complete-looking one with files missing
        keys.sort(key=lambda k: not k.endswith("/" + MANIFEST))
        for key in keys:
            self.store.delete([key])

    def remove_leftovers(self) -> list[str]:
        """Remove versions a killed deploy left without a manifest (never the current one)."""
        live = None
        with contextlib.suppress(MlopsError):
            live = self.current_version()
        by_version: dict[str, set[str]] = {}
        for key in self.store.list(VERSIONS):
            parts = key.split("/")
            if len(parts) >= 3:
                by_version.setdefault(parts[1], set()).add("/".join(parts[2:]))
        removed = []
        for version, names in sorted(by_version.items()):
            if MANIFEST not in names and version != live:
                self.store.delete([f"{VERSIONS}/{version}/{n}" for n in sorted(names)])
                removed.append(f"versions/{version} (incomplete upload)")
        return removed

    def install(
        self,
        bundle: Path,
        version: str,
        *,
        name: str | None = None,
        commit: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> Path:
        """Upload a verified bundle to `versions/<version>/`, its manifest last, then read it
        back and verify it; returns the local verified copy (for the smoke test).

        Installing the same bundle again is a no-op; different content under the name of the
        current version is refused. A stored copy of this very bundle whose bytes no longer match
        its manifest (altered or damaged in storage) is repaired: its files are uploaded again,
        the manifest and the pointer stay as they are, and the copy is verified once more.
        """
        check_version(version)
        bundle = Path(bundle)
        meta = verify_bundle(bundle)
        files = tree_hashes(bundle)
        md5 = dvc_dir_md5({rel: f["md5"] for rel, f in files.items()})
        found = self.manifest(version) if self.has_version(version) else None
        if found is not None and found[1].get("dvc_md5") == md5:
            try:
                dest = self.scratch_dir("installed-")
                self.download(version, dest)
                return dest
            except MlopsError:
                if self.current_version() == version and found[1].get("files") == files:
                    return self._reupload(bundle, version, files)
        if found is not None and self.current_version() == version:
            raise DeployError(
                f"version {version} is deployed in {self.root} with different content",
                "A version's content never changes: register a new version and deploy that.",
            )
        if self.has_version(version):
            self.remove_version(version)
        prefix = f"{VERSIONS}/{version}/"
        for rel in files:
            self.store.put_file(bundle / rel, prefix + rel)
        record = {
            "name": name or meta.get("name") or bundle.name,
            "version": version,
            "commit": commit or (meta.get("git") or {}).get("commit"),
            "deployed_at": now_iso(),
            "source": str(bundle),
            **(extra or {}),
        }
        deployment = _json(record)
        self.store.write_bytes(prefix + DEPLOYMENT, deployment)
        checkpoint("install-copied")
        manifest = {
            "version": version,
            "files": files,
            "dvc_md5": md5,
            "deployment_sha256": hashlib.sha256(deployment).hexdigest(),
        }
        self.store.write_bytes(prefix + MANIFEST, _json(manifest))
        dest = self.scratch_dir("installed-")
        self.download(version, dest)  # read back: what a server will get
        return dest

    def _reupload(self, bundle: Path, version: str, files: dict[str, Any]) -> Path:
        """Upload the files of the live `version` again over a damaged copy; verify it."""
        self._fence()
        prefix = f"{VERSIONS}/{version}/"
        for rel in files:
            self.store.put_file(bundle / rel, prefix + rel)
        dest = self.scratch_dir("installed-")
        self.download(version, dest)
        return dest

    def switch(self, version: str) -> str | None:
        """Write the `current` pointer to an installed version; return the previous version."""
        found = self.manifest(version)
        if found is None:
            raise DeployError(
                f"version {version} is not installed in {self.root}",
                f"Install it first; installed versions: {', '.join(self.versions()) or 'none'}.",
            )
        raw, manifest = found
        previous = None
        with contextlib.suppress(MlopsError):
            previous = self.current_version()
        pointer = {
            "version": version,
            "dvc_md5": manifest.get("dvc_md5"),
            "manifest_sha256": hashlib.sha256(raw).hexdigest(),
            "written_at": now_iso(),
        }
        checkpoint("switch-linked")
        self._fence()
        self.store.write_bytes(CURRENT, _json(pointer))
        return previous

    def clear_current(self) -> None:
        """Remove the pointer (nothing live)."""
        self._fence()
        self.store.delete([CURRENT])

    def append_history(self, event: dict[str, Any]) -> dict[str, Any]:
        """Write one event as its own object (created If-None-Match: never rewritten)."""
        record = {"ts": now_iso(), **event}
        data = json.dumps(record, default=str, separators=(",", ":")).encode()
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
        while not self.store.write_bytes(
            f"{EVENTS}/{stamp}-{secrets.token_hex(4)}.json", data, exclusive=True
        ):
            pass
        return record


def name_stored_copy(exc: BaseException, local: Path | str, shown: str) -> BaseException:
    """Make an error about a local copy (a download, a scratch directory) name what the user
    knows instead: the stored version's URL, the fetched bundle. Changes `exc` in place."""
    if isinstance(exc, MlopsError) and str(local):
        exc.message = exc.message.replace(str(local), shown)
        if exc.hint:
            exc.hint = exc.hint.replace(str(local), shown)
        exc.args = (exc.message, *exc.args[1:])
    return exc


SCRATCH_PREFIX = "mlops-target-"


def new_scratch_root(base: Path | str | None = None) -> Path:
    """A new private directory `<tmp>/mlops-target-<pid>-<random>` for this process's
    downloads; first removes the ones whose process is gone (a SIGKILLed deploy's), so a killed
    deploy leaves nothing behind once the next one (or any `mlops` reading a target) starts."""
    base = Path(base if base is not None else tempfile.gettempdir())
    remove_dead_scratch(base)
    path = base / f"{SCRATCH_PREFIX}{os.getpid()}-{secrets.token_hex(4)}"
    path.mkdir(mode=0o700, parents=True)
    return path


def remove_dead_scratch(base: Path) -> list[Path]:
    """Remove `base/mlops-target-<pid>-*` directories of processes that no longer exist on
    this host; the removed paths. Others' (alive, or another user's) are left alone."""
    removed = []
    with contextlib.suppress(OSError):
        for path in base.glob(f"{SCRATCH_PREFIX}*-*"):
            pid = path.name[len(SCRATCH_PREFIX) :].split("-", 1)[0]
            if not pid.isdigit() or path.is_symlink() or not path.is_dir():
                continue
            if path.stat().st_uid != os.getuid():
                continue  # another user's
            try:
                os.kill(int(pid), 0)
                continue  # alive
            except ProcessLookupError:
                pass
            except (OSError, OverflowError):
                continue  # another user's process, or not a pid: not ours to judge
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def _lease_key(generation: int) -> str:
    return f"{LOCK}/{generation:012d}.json"


def _stale(held: dict[str, Any]) -> bool:
    try:
        if float(held.get("expires", 0)) < time.time():
            return True
    except (TypeError, ValueError):
        return True
    if held.get("host") == socket.gethostname():
        try:
            os.kill(int(held.get("pid", 0)), 0)
        except ProcessLookupError:
            return True
        except (OSError, TypeError, ValueError):
            return False
    return False


def open_any(text: str, base: Path | str = ".", *, where: str = "target") -> Target | RemoteTarget:
    """The target named by `text`: a `RemoteTarget` for an object-store URL, else a local
    `Target` (a relative path is relative to `base`)."""
    url = parse_target(text, where=where)
    if not url.is_local:
        return RemoteTarget(open_store(url, where=where))
    return Target((Path(base) / url.path).absolute())


def cleanup(path: Path) -> None:
    """Remove a local scratch directory."""
    shutil.rmtree(path, ignore_errors=True)

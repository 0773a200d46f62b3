"""Object storage for deployment targets: a URL opened with fsspec, as keys under a root.

A target URL is a local path (the `Target` of `mlops.deploy.target`) or an object-store URL:
`s3://bucket/prefix` (s3fs, from the `s3` extra), `gs://bucket/prefix` (gcsfs, `gs` extra),
`az://container/prefix` or `azure://container/prefix` (adlfs, `azure` extra). Credentials come
only from the provider's environment variables (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
AWS_SESSION_TOKEN, AWS_ENDPOINT_URL; GOOGLE_APPLICATION_CREDENTIALS; AZURE_STORAGE_CONNECTION_STRING
or AZURE_STORAGE_ACCOUNT_NAME + AZURE_STORAGE_ACCOUNT_KEY); a URL carrying credentials is refused,
and no message here ever contains them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlops.errors import DeployError, UsageError

# scheme -> (fsspec protocol, the module that implements it, the mlops extra that installs it)
SCHEMES: dict[str, tuple[str, str, str]] = {
    "s3": ("s3", "s3fs", "s3"),
    "gs": ("gs", "gcsfs", "gs"),
    "gcs": ("gs", "gcsfs", "gs"),
    "az": ("az", "adlfs", "azure"),
    "azure": ("az", "adlfs", "azure"),
    "abfs": ("abfs", "adlfs", "azure"),
}
_URL = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://(.*)$")
_BUCKET = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{1,254}$")
_SEGMENT = re.compile(r"^[A-Za-z0-9._=+@-]{1,255}$")


class StorageError(DeployError):
    """The object store could not be read or written (unreachable, refused, missing)."""


@dataclass(frozen=True)
class TargetURL:
    """A parsed target: `scheme` None for a local path."""

    text: str
    scheme: str | None  # "s3", "gs", "az", ... (None: a local directory)
    path: str  # bucket/prefix for a store, the directory for a local target

    @property
    def is_local(self) -> bool:
        """Whether this is a local directory."""
        return self.scheme is None


def parse_target(text: str, *, where: str = "target") -> TargetURL:
    """Parse a target (`where` names it in errors: `environments.staging.target`).

    Raises `UsageError` (exit 2) for an unknown scheme, credentials in the URL, or a path that
    is not `bucket/prefix` made of plain segments.
    """
    m = _URL.match(text.strip())
    if m is None:
        return TargetURL(text, None, text)
    scheme, rest = m.group(1).lower(), m.group(2)
    if scheme == "file":
        return TargetURL(text, None, rest)
    if scheme not in SCHEMES:
        known = ", ".join(f"{s}://" for s in SCHEMES)
        raise UsageError(
            f"{where}: unknown storage scheme {scheme}:// in {_safe(text)}",
            f"Use a local directory or one of {known}.",
        )
    if "@" in rest.split("/", 1)[0] or "?" in rest or "#" in rest:
        raise UsageError(
            f"{where}: the URL must not carry credentials, a query or a fragment",
            "Give credentials in the environment (e.g. AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY), never in pipeline.yaml.",
        )
    parts = [p for p in rest.split("/") if p]
    if (
        not parts
        or not _BUCKET.match(parts[0])
        or any(not _SEGMENT.match(p) or p in (".", "..") for p in parts[1:])
    ):
        raise UsageError(
            f"{where}: {_safe(text)} is not {scheme}://BUCKET/PREFIX",
            f"Give a bucket and an optional prefix, such as {scheme}://my-bucket/staging.",
        )
    return TargetURL(text, SCHEMES[scheme][0], "/".join(parts))


def _safe(text: str) -> str:
    """A URL for messages: anything before an @ in the authority is masked."""
    m = _URL.match(text)
    if not m:
        return text
    head, _, tail = m.group(2).partition("/")
    if "@" in head:
        head = "***@" + head.rsplit("@", 1)[1]
    return f"{m.group(1)}://{head}/{tail}".rstrip("/")


def missing_package(url: TargetURL, *, where: str = "target") -> UsageError | None:
    """The error to raise when the filesystem package of `url` is not installed, else None."""
    if url.is_local:
        return None
    scheme = next(s for s, v in SCHEMES.items() if v[0] == url.scheme)
    _, module, extra = SCHEMES[scheme]
    import importlib.util

    if importlib.util.find_spec(module) is not None:
        return None
    return UsageError(
        f"{where}: {url.scheme}:// needs {module}, which is not installed",
        f"Install the `{extra}` extra the way mlops was installed (in a checkout: "
        f"pip install -e '.[{extra}]').",
    )


class Store:
    """Keys (slash-separated, relative) under a root in one fsspec filesystem."""

    def __init__(self, url: TargetURL, fs: Any) -> None:
        self.url = url
        self.fs = fs
        self.root = url.path.rstrip("/")

    def __repr__(self) -> str:
        return f"Store({_safe(self.url.text)})"

    @property
    def display(self) -> str:
        """The target URL for messages (never credentials)."""
        return _safe(self.url.text)

    def _p(self, key: str) -> str:
        return f"{self.root}/{key}" if key else self.root

    def _fail(self, what: str, key: str, exc: BaseException) -> StorageError:
        reason = type(exc).__name__
        text = str(exc)
        if text and len(text) < 300 and "secret" not in text.lower():
            reason += f": {text}"
        return StorageError(
            f"cannot {what} {self.display}/{key}: {reason}",
            "Check the storage is reachable and the credentials in the environment "
            "(AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_ENDPOINT_URL, ...) allow it.",
        )

    def read_bytes(self, key: str) -> bytes | None:
        """The bytes of `key`, or None when it does not exist."""
        try:
            self.fs.invalidate_cache(self._p(key))
            return self.fs.cat_file(self._p(key))
        except FileNotFoundError:
            return None
        except Exception as exc:  # fsspec backends raise many types
            raise self._fail("read", key, exc) from None

    def write_bytes(self, key: str, data: bytes, *, exclusive: bool = False) -> bool:
        """Write `key` in one request; with `exclusive`, only if absent (If-None-Match: *).

        Returns False when `exclusive` and the key exists already.
        """
        try:
            if exclusive:
                self.fs.pipe_file(self._p(key), data, mode="create")
            else:
                self.fs.pipe_file(self._p(key), data)
            return True
        except FileExistsError:
            return False
        except Exception as exc:
            if exclusive and _precondition_failed(exc):
                return False
            raise self._fail("write", key, exc) from None
        finally:
            self.fs.invalidate_cache(self._p(key))

    def put_file(self, local: Path | str, key: str) -> None:
        """Upload a local file to `key`."""
        try:
            self.fs.put_file(str(local), self._p(key))
        except Exception as exc:
            raise self._fail("write", key, exc) from None

    def get_file(self, key: str, local: Path | str) -> None:
        """Download `key` to a local file."""
        try:
            self.fs.get_file(self._p(key), str(local))
        except Exception as exc:
            raise self._fail("read", key, exc) from None

    def etag(self, key: str) -> str | None:
        """A cheap change marker of `key` (its ETag, else size and time), None when absent."""
        try:
            self.fs.invalidate_cache(self._p(key))
            info = self.fs.info(self._p(key))
        except FileNotFoundError:
            return None
        except Exception as exc:
            raise self._fail("read", key, exc) from None
        tag = info.get("ETag") or info.get("etag") or info.get("md5Hash")
        if tag:
            return str(tag)
        return f"{info.get('size')}:{info.get('LastModified') or info.get('mtime') or ''}"

    def list(self, prefix: str = "") -> list[str]:
        """Every key under `prefix` (recursive), relative to the root, sorted."""
        base = self._p(prefix.rstrip("/"))
        try:
            self.fs.invalidate_cache(base)
            found = self.fs.find(base)
        except FileNotFoundError:
            return []
        except Exception as exc:
            raise self._fail("list", prefix, exc) from None
        out = []
        root = self.root + "/"
        for name in found:
            name = name.split("://", 1)[-1]
            if name.startswith(root):
                out.append(name[len(root) :])
        return sorted(out)

    def delete(self, keys: list[str]) -> None:
        """Delete keys (absent ones are ignored)."""
        if not keys:
            return
        try:
            self.fs.rm([self._p(k) for k in keys])
        except FileNotFoundError:
            pass
        except Exception as exc:
            raise self._fail("delete", keys[0], exc) from None
        finally:
            self.fs.invalidate_cache(self.root)


def _precondition_failed(exc: BaseException) -> bool:
    text = f"{type(exc).__name__} {exc}"
    return "PreconditionFailed" in text or "412" in text or "ConditionalRequestConflict" in text


def open_store(url: TargetURL | str, *, where: str = "target") -> Store:
    """A `Store` for an object-storage target URL (credentials from the environment only)."""
    if isinstance(url, str):
        url = parse_target(url, where=where)
    if url.is_local:
        raise UsageError(f"{where}: {url.text} is a local directory, not object storage")
    missing = missing_package(url, where=where)
    if missing is not None:
        raise missing
    import fsspec

    options: dict[str, Any] = {"skip_instance_cache": True}
    if url.scheme == "s3":
        options["use_listings_cache"] = False
    try:
        fs = fsspec.filesystem(url.scheme, **options)
    except Exception as exc:
        raise StorageError(
            f"{where}: cannot open {_safe(url.text)}: {type(exc).__name__}",
            "Check the storage credentials in the environment.",
        ) from None
    return Store(url, fs)

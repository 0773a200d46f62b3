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

from pathlib import Path
from typing import Any

from mlops.config.storage_url import (  # the grammar lives in config (pipeline.yaml checks it)
    SCHEMES,
    TargetURL,
    _safe,
    missing_package,
    parse_target,
)
from mlops.errors import DeployError, UsageError

__all__ = [
    "SCHEMES",
    "StorageError",
    "Store",
    "TargetURL",
    "missing_package",
    "open_store",
    "parse_target",
]


class StorageError(DeployError):
    """The object store could not be read or written (unreachable, refused, missing)."""


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

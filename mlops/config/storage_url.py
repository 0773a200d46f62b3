"""The grammar of a deployment target (`target:` in pipeline.yaml, `MLOPS_TARGET_<ENV>`): a local
directory or an object-store URL, `s3://bucket/prefix` (s3fs, from the `s3` extra),
`gs://bucket/prefix` (gcsfs, `gs` extra), `az://container/prefix` or `azure://container/prefix`
(adlfs, `azure` extra).

Here, below the config models that validate `target:`, so that config need not import the deploy
package; `mlops.deploy.storage` opens what this parses. A URL carrying credentials is refused, and
no message here ever contains them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mlops.errors import UsageError

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

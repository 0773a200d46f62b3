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
_BUCKET = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{2,254}$")
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
    at = f"{where}: " if where else ""
    if scheme == "file":
        return TargetURL(text, None, rest)
    if scheme not in SCHEMES:
        why = (
            " (a web address: a target must be object storage mlops can write versions and a "
            "pointer to, or a directory)"
            if scheme in ("http", "https")
            else ""
        )
        raise UsageError(
            f"{at}unknown storage scheme {scheme}:// in {_safe(text)}{why}",
            f"Use a local directory or {schemes_help()}.",
        )
    if "@" in rest.split("/", 1)[0] or "?" in rest or "#" in rest:
        raise UsageError(
            f"{at}the URL must not carry credentials, a query or a fragment",
            "Give credentials in the environment (e.g. AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY), never in pipeline.yaml.",
        )
    parts = [p for p in rest.split("/") if p]
    problem = _path_problem(scheme, parts)
    if problem:
        bucket = "container" if SCHEMES[scheme][2] == "azure" else "bucket"
        raise UsageError(
            f"{at}{_safe(text)} is not {scheme}://{bucket.upper()}/PREFIX: {problem}",
            f"Give a {bucket} and an optional prefix, such as {scheme}://my-{bucket}/staging.",
        )
    return TargetURL(text, SCHEMES[scheme][0], "/".join(parts))


def _path_problem(scheme: str, parts: list[str]) -> str:
    """What is wrong with the bucket (container) name and the prefix of a URL, or ""."""
    bucket = "container" if SCHEMES[scheme][2] == "azure" else "bucket"
    if not parts:
        return f"no {bucket} name"
    name = parts[0][:80]
    if len(parts[0]) < 3 or len(parts[0]) > 255:
        provider = "Azure container" if bucket == "container" else "S3 and GCS bucket"
        return (
            f"the {bucket} name {name!r} is {'too short' if len(name) < 3 else 'too long'} "
            f"({provider} names are 3 to 63 characters)"
        )
    if not _BUCKET.match(parts[0]):
        return (
            f"the {bucket} name {name!r} has characters other than letters, digits, '.', '_' "
            "and '-', or does not start with a letter or a digit"
        )
    bad = next((p for p in parts[1:] if not _SEGMENT.match(p) or p in (".", "..")), None)
    if bad is not None:
        return f"the prefix part {bad[:80]!r} is not a plain name (letters, digits, ._=+@-)"
    return ""


def schemes_help() -> str:
    """The supported schemes, the extra each needs, and which ones work in this installation."""
    import importlib.util

    by_extra: dict[str, list[str]] = {}
    for scheme, (_, _, extra) in SCHEMES.items():
        by_extra.setdefault(extra, []).append(f"{scheme}://")
    modules = {extra: module for _, module, extra in SCHEMES.values()}
    parts = [", ".join(s[:-1]) + " or " + s[-1] if len(s) > 1 else s[0] for s in by_extra.values()]
    parts = [f"{g} (the `{e}` extra)" for g, e in zip(parts, by_extra, strict=True)]
    here = [by_extra[e][0] for e, module in modules.items() if importlib.util.find_spec(module)]
    return "one of: " + "; ".join(parts) + " (installed here: " + (", ".join(here) or "none") + ")"


def _safe(text: str) -> str:
    """A URL for messages: anything before an @ in the authority is masked."""
    m = _URL.match(text)
    if not m:
        return text
    head, _, tail = m.group(2).partition("/")
    if "@" in head:
        head = "***@" + head.rsplit("@", 1)[1]
    return f"{m.group(1)}://{head}" + (f"/{tail}".rstrip("/") if tail else "")


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
        f"{where + ': ' if where else ''}{scheme}:// needs {module}, which is not installed",
        f"Install the `{extra}` extra the way mlops was installed (in a checkout: "
        f"pip install -e '.[{extra}]'), or use a local directory or {schemes_help()}.",
    )

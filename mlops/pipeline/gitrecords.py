"""Run records that travel with git: one immutable object per record, one ref per record.

Every record `RunStore.save` writes is also stored as a blob (the record as compact JSON, secrets
scrubbed) that the ref `refs/mlops/records/<id>` points at. Writers never share a ref, so two CI
jobs (or two teammates) pushing records at the same moment both land: no ref is ever updated by
two writers, so no push is a non-fast-forward. `git fetch` brings them
(`+refs/mlops/*:refs/mlops/*`, configured by `mlops init` and by `mlops runs pull`), and
`.mlops/runs.db` is an index of them, brought up to date (new refs only) on every read.

What is never in a record: values of environment variables whose names say they are secret
(`*TOKEN*`, `*SECRET*`, `*PASSWORD*`, `*KEY*`, `*_URL`, ...), credentials in URLs
(`https://user:pass@host`) and values under keys named like secrets (`password:`, `token:`).
Records stay small: metrics, params and hashes, never data; a record over `MAX_BYTES` loses its
stage details first.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from mlops.adapters import git
from mlops.errors import GitStateError

REF_PREFIX = "refs/mlops/records/"
REFSPEC = "+refs/mlops/*:refs/mlops/*"
MAX_BYTES = 64 * 1024
REDACTED = "***"
ID_RE = re.compile(r"^[0-9A-Za-z][0-9A-Za-z._-]{0,127}$")
SECRET_NAME_RE = re.compile(
    r"TOKEN|SECRET|PASSW|PASSPHRASE|KEY|CREDENTIAL|AUTH|COOKIE|SESSION|PRIVATE|WEBHOOK|_URL$|_DSN$",
    re.IGNORECASE,
)
SECRET_KEY_RE = re.compile(
    r"^(password|passwd|secret|token|api[_-]?key|access[_-]?key|private[_-]?key|auth|"
    r"authorization|credentials?|webhook)$",
    re.IGNORECASE,
)
_URL_CREDENTIALS_RE = re.compile(r"(\b[a-zA-Z][\w+.-]*://)[^/@\s]+@")
DISABLE_ENV = "MLOPS_GIT_RECORDS"  # "0": keep records in the local index only


def enabled() -> bool:
    return os.environ.get(DISABLE_ENV, "1") not in ("0", "false", "no", "off")


def secret_values(environ: dict[str, str] | None = None) -> list[str]:
    """Values of the environment variables whose names say they hold a secret (6+ chars),
    longest first (so a secret containing another is replaced whole)."""
    env = os.environ if environ is None else environ
    values = {v for k, v in env.items() if SECRET_NAME_RE.search(k) and len(v) >= 6}
    return sorted(values, key=len, reverse=True)


def scrub(value: Any, secrets: list[str]) -> Any:
    """`value` with every secret value, URL credential and secret-named key's value replaced."""
    if isinstance(value, str):
        text = _URL_CREDENTIALS_RE.sub(r"\1" + REDACTED + "@", value)
        for secret in secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        return text
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            name = scrub(str(key), secrets)
            if SECRET_KEY_RE.match(str(key)) and item not in (None, "", {}, []):
                out[name] = REDACTED
            else:
                out[name] = scrub(item, secrets)
        return out
    if isinstance(value, list | tuple):
        return [scrub(v, secrets) for v in value]
    return value


def encode(record: dict[str, Any], secrets: list[str] | None = None) -> bytes:
    """The record as it travels: scrubbed, compact, sorted JSON of at most `MAX_BYTES`."""
    clean = scrub(record, secret_values() if secrets is None else secrets)
    data = _dump(clean)
    if len(data) > MAX_BYTES:
        clean["stages"] = [
            {k: s.get(k) for k in ("name", "status", "seconds") if k in s}
            for s in clean.get("stages") or []
            if isinstance(s, dict)
        ]
        clean["message"] = str(clean.get("message") or "")[:2000]
        clean.setdefault("extra", {})["truncated"] = True
        data = _dump(clean)
    if len(data) > MAX_BYTES:
        keep = ("id", "kind", "started", "ended", "outcome", "exit_code", "git_commit")
        clean = {k: clean.get(k) for k in keep} | {
            "metrics": clean.get("metrics") if len(_dump(clean.get("metrics"))) < 16384 else {},
            "extra": {"truncated": True},
        }
        data = _dump(clean)
    return data


def _dump(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str).encode()


_TYPES: dict[str, tuple[type, ...]] = {
    "id": (str,),
    "kind": (str,),
    "started": (int, float),
    "ended": (int, float, type(None)),
    "outcome": (str,),
    "exit_code": (int,),
    "git_commit": (str, type(None)),
    "git_dirty": (bool, type(None)),
    "git_branch": (str, type(None)),
    "targets": (list,),
    "stages": (list,),
    "params": (dict,),
    "deps": (dict,),
    "outs": (dict,),
    "metrics": (dict,),
    "verdict": (dict,),
    "message": (str,),
    "extra": (dict,),
}
REQUIRED = ("id", "kind", "started")


def decode(data: bytes, record_id: str) -> dict[str, Any] | None:
    """A record read from git, checked field by field; None when it is not one (bad JSON,
    another id than its ref's, a field of the wrong type, too large)."""
    if len(data) > MAX_BYTES:
        return None
    try:
        value = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(value, dict) or any(k not in value for k in REQUIRED):
        return None
    out: dict[str, Any] = {}
    for key, types in _TYPES.items():
        if key not in value:
            continue
        item = value[key]
        if isinstance(item, bool) and bool not in types:
            return None
        if not isinstance(item, types):
            return None
        out[key] = item
    if out["id"] != record_id or not ID_RE.match(record_id):
        return None
    return out


def is_repository(root: Path) -> bool:
    return git.toplevel(root) is not None


def publish(root: Path, record: dict[str, Any]) -> str | None:
    """Store `record` in git (blob + `refs/mlops/records/<id>`); its object id, or None when
    `root` is not in a git repository, the id is not a valid ref name, or git refuses."""
    record_id = str(record.get("id", ""))
    if not enabled() or not ID_RE.match(record_id):
        return None
    try:
        oid = git.write_blob(root, encode(record))
        git.update_ref(root, REF_PREFIX + record_id, oid)
    except GitStateError:
        return None
    return oid


def local_refs(root: Path) -> dict[str, str]:
    """`{record id: object id}` of the records in this repository."""
    if not enabled():
        return {}
    refs = git.refs_under(root, REF_PREFIX.rstrip("/"))
    return {name[len(REF_PREFIX) :]: oid for name, oid in refs.items()}


def read_new(root: Path, known: dict[str, str]) -> list[tuple[str, str, dict[str, Any] | None]]:
    """Records whose ref is not in `known` ({id: oid}) or points elsewhere: (id, oid, record or
    None when the object is not a valid record)."""
    refs = local_refs(root)
    new = {rid: oid for rid, oid in refs.items() if known.get(rid) != oid}
    if not new:
        return []
    blobs = git.read_blobs(root, sorted(set(new.values())), MAX_BYTES)
    return [
        (rid, oid, decode(blobs[oid], rid) if oid in blobs else None) for rid, oid in new.items()
    ]


def ensure_refspec(root: Path, remote: str = "origin") -> bool:
    """Make `git fetch REMOTE` bring the records; True when the refspec was added now."""
    if remote not in git.remotes(root):
        return False
    key = f"remote.{remote}.fetch"
    if REFSPEC in git.config_get_all(root, key):
        return False
    git.config_add(root, key, REFSPEC)
    return True


def push(root: Path, remote: str = "origin", attempts: int = 3) -> git.GitResult:
    """Push every record ref to `remote` (records are immutable: a ref already there with the
    same object is left as is). Retried: a remote busy with another writer's push may refuse
    once; each record has its own ref, so a retry never overwrites anyone's."""
    res = git.GitResult(0, "", "")
    for _ in range(max(1, attempts)):
        res = git.push(root, remote, [f"+{REF_PREFIX}*:{REF_PREFIX}*"])
        if res.code == 0:
            break
    return res


def fetch(root: Path, remote: str = "origin") -> git.GitResult:
    """Fetch every record ref of `remote` (and configure plain `git fetch` to do the same)."""
    ensure_refspec(root, remote)
    return git.fetch(root, remote, REFSPEC)

"""GitLab's REST API (v4), through the standard library: merge-request notes.

The token comes from the environment (`MLOPS_GITLAB_TOKEN`, a project access token: the CI job token
cannot post notes) and never appears in messages: every error text is passed through `redact`.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

from mlops.errors import ExitCode, MlopsError, UsageError

TOKEN_ENV = "MLOPS_GITLAB_TOKEN"  # noqa: S105 - the variable's name, not a secret
MARKER = "<!-- mlops-report -->"
TIMEOUT = 30


class GitLabError(MlopsError):
    """GitLab's API refused or failed a request: a configuration problem on the user's side (token,
    URL, project or merge-request id, network), so exit 2 rather than 1 ("a bug in mlops")."""

    exit_code = ExitCode.USAGE


@dataclass
class MergeRequestRef:
    api_url: str  # CI_API_V4_URL, e.g. https://gitlab.example.com/api/v4
    project_id: str  # CI_PROJECT_ID
    mr_iid: str  # CI_MERGE_REQUEST_IID
    token: str

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> MergeRequestRef:
        """From GitLab CI's variables; says which ones are missing."""
        env = dict(os.environ if env is None else env)
        names = {
            "CI_API_V4_URL": "api_url",
            "CI_PROJECT_ID": "project_id",
            "CI_MERGE_REQUEST_IID": "mr_iid",
            TOKEN_ENV: "token",
        }
        missing = [n for n in names if not env.get(n)]
        if missing:
            raise UsageError(
                f"cannot post to the merge request: {', '.join(missing)} not set",
                "Run in a merge-request pipeline, and add a project access token with `api` scope "
                f"as the masked CI/CD variable {TOKEN_ENV}.",
            )
        return cls(**{attr: env[n] for n, attr in names.items()})


def redact(text: str, secret: str) -> str:
    return text.replace(secret, "[MASKED]") if secret else text


def _request(ref: MergeRequestRef, method: str, path: str, body: dict | None = None) -> Any:
    url = ref.api_url.rstrip("/") + path
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)  # noqa: S310 - http(s) from CI
    req.add_header("PRIVATE-TOKEN", ref.token)
    req.add_header("Accept", "application/json")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=TIMEOUT) as resp:  # noqa: S310
            text = resp.read().decode("utf-8", errors="replace")
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode("utf-8", errors="replace")[:300]
        hint = {
            401: f"The token in {TOKEN_ENV} is missing, expired or revoked.",
            403: f"The token in {TOKEN_ENV} lacks the `api` scope or Reporter+ role.",
            404: "Check CI_API_V4_URL, CI_PROJECT_ID and CI_MERGE_REQUEST_IID.",
        }.get(exc.code, "Retry; if it persists, check GitLab's status.")
        raise GitLabError(
            redact(f"GitLab answered {exc.code} to {method} {path}: {detail}", ref.token), hint
        ) from None
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        raise GitLabError(
            redact(f"cannot reach GitLab at {ref.api_url}: {exc}", ref.token),
            "Check CI_API_V4_URL and the runner's network.",
        ) from None
    return json.loads(text) if text.strip() else None


def _notes_path(ref: MergeRequestRef) -> str:
    project = urllib.parse.quote(str(ref.project_id), safe="")
    return f"/projects/{project}/merge_requests/{ref.mr_iid}/notes"


def upsert_note(ref: MergeRequestRef, body: str, marker: str = MARKER) -> dict[str, Any]:
    """Create the merge request's report note, or update the one carrying `marker`.

    Returns {"action": "created"|"updated", "note_id": ...}. One note per merge request: the
    marker (an HTML comment, invisible in GitLab) finds it again on the next pipeline.
    """
    text = body if marker in body else f"{marker}\n{body}"
    page = 1
    existing = None
    while existing is None:
        notes = _request(ref, "GET", f"{_notes_path(ref)}?per_page=100&page={page}&sort=asc")
        if not notes:
            break
        existing = next((n for n in notes if marker in (n.get("body") or "")), None)
        if len(notes) < 100:
            break
        page += 1
    if existing is not None:
        _request(ref, "PUT", f"{_notes_path(ref)}/{existing['id']}", {"body": text})
        return {"action": "updated", "note_id": existing["id"]}
    created = _request(ref, "POST", _notes_path(ref), {"body": text})
    return {"action": "created", "note_id": (created or {}).get("id")}


# ---- issues (monitoring.notify.gitlab_issue) -------------------------------------------------


@dataclass
class ProjectRef:
    """A project's API address and token (CI_API_V4_URL, CI_PROJECT_ID, MLOPS_GITLAB_TOKEN)."""

    api_url: str
    project_id: str
    token: str

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> ProjectRef:
        env = dict(os.environ if env is None else env)
        names = {"CI_API_V4_URL": "api_url", "CI_PROJECT_ID": "project_id", TOKEN_ENV: "token"}
        missing = [n for n in names if not env.get(n)]
        if missing:
            raise UsageError(
                f"cannot open a GitLab issue: {', '.join(missing)} not set",
                f"Run in GitLab CI with a project access token (`api` scope) in {TOKEN_ENV}.",
            )
        return cls(**{attr: env[n] for n, attr in names.items()})


def _issues_path(ref: ProjectRef) -> str:
    return f"/projects/{urllib.parse.quote(str(ref.project_id), safe='')}/issues"


def create_issue(ref: ProjectRef, title: str, description: str, labels: list[str]) -> int | None:
    """Open an issue; its iid."""
    body = {"title": title, "description": description, "labels": ",".join(labels)}
    created = _request(ref, "POST", _issues_path(ref), body)  # type: ignore[arg-type]
    iid = (created or {}).get("iid")
    return int(iid) if isinstance(iid, int) else None


def close_issue(ref: ProjectRef, iid: int, comment: str) -> None:
    """Comment on issue `iid`, then close it."""
    path = f"{_issues_path(ref)}/{int(iid)}"
    _request(ref, "POST", f"{path}/notes", {"body": comment})  # type: ignore[arg-type]
    _request(ref, "PUT", path, {"state_event": "close"})  # type: ignore[arg-type]

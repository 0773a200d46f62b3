"""GitLab's REST API (v4), through the standard library: merge-request notes.

The token comes from the environment (`MLOPS_GITLAB_TOKEN`, a project access token: the CI job token
cannot post notes) and never appears in messages: every error text is passed through `redact`
(masked before it is shortened), and the token is never sent across a redirect to another origin
(`_SameOriginRedirects`).
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

from mlops.adapters.secrets import clip, mask
from mlops.errors import ExitCode, MlopsError, UsageError

TOKEN_ENV = "MLOPS_GITLAB_TOKEN"  # noqa: S105 - the variable's name, not a secret
MARKER = "<!-- mlops-report -->"
TIMEOUT = 30
MAX_ANSWER = 8 * 1024 * 1024  # a page of 100 notes is far smaller


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
    """`text` with `secret` and every other secret-looking variable masked."""
    return mask(text, extra=[secret] if secret else [])


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urllib.parse.urlsplit(url)
    default = {"http": 80, "https": 443}.get(parts.scheme.lower())
    return parts.scheme.lower(), (parts.hostname or "").lower(), parts.port or default


class _SameOriginRedirects(urllib.request.HTTPRedirectHandler):
    """Follows a redirect only for a GET to the same origin (scheme, host, port); any other is
    refused: the request carries the token in `PRIVATE-TOKEN`, which must never reach another
    origin, and a redirected POST or PUT loses its body (the note would silently not be written).
    Refusing rather than following without the token: an API URL that redirects elsewhere is a
    wrong `CI_API_V4_URL` (or a hostile answer), and the user should fix it, not get a 401."""

    def redirect_request(
        self, req: Any, fp: Any, code: int, msg: str, headers: Any, newurl: str
    ) -> urllib.request.Request | None:
        target = urllib.parse.urljoin(req.full_url, newurl)
        method = req.get_method()
        if method != "GET" or _origin(target) != _origin(req.full_url):
            raise _Redirected(code, target)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


class _Redirected(Exception):
    def __init__(self, code: int, target: str) -> None:
        super().__init__(code, target)
        self.code, self.target = code, target


_OPENER = urllib.request.build_opener(_SameOriginRedirects)


def _detail(raw: bytes, token: str) -> str:
    """What the server said, masked before it is shortened, on one line."""
    text = raw.decode("utf-8", errors="replace")
    return " ".join(clip(redact(text, token), 300).split())


def _request(
    ref: MergeRequestRef, method: str, path: str, body: dict[str, Any] | None = None
) -> Any:
    """One API call; the decoded JSON answer. Any answer that is not a 2xx with a JSON body is a
    `GitLabError` (exit 2) showing the status."""
    url = ref.api_url.rstrip("/") + path
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)  # noqa: S310 - http(s) from CI
    req.add_header("PRIVATE-TOKEN", ref.token)
    req.add_header("Accept", "application/json")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    what = f"{method} {redact(path, ref.token)}"
    try:
        with _OPENER.open(req, timeout=TIMEOUT) as resp:
            status = resp.status
            ctype = resp.headers.get("Content-Type", "")
            raw = resp.read(MAX_ANSWER + 1)
    except _Redirected as exc:
        raise GitLabError(
            f"GitLab answered {exc.code} to {what}, redirecting to "
            f"{redact(exc.target, ref.token)}; "
            "not followed: the token is sent only to CI_API_V4_URL's own origin, and only GETs "
            "are redirected",
            "Set CI_API_V4_URL to the API's final address (scheme, host and port included, "
            "e.g. https://gitlab.example.com/api/v4).",
        ) from None
    except urllib.error.HTTPError as exc:
        detail = _detail(exc.read(MAX_ANSWER), ref.token)
        hint = {
            401: f"The token in {TOKEN_ENV} is missing, expired or revoked.",
            403: f"The token in {TOKEN_ENV} lacks the `api` scope or Reporter+ role.",
            404: "Check CI_API_V4_URL, CI_PROJECT_ID and CI_MERGE_REQUEST_IID.",
        }.get(exc.code, "Retry; if it persists, check GitLab's status.")
        raise GitLabError(f"GitLab answered {exc.code} to {what}: {detail}", hint) from None
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        raise GitLabError(
            redact(f"cannot reach GitLab at {ref.api_url}: {exc}", ref.token),
            "Check CI_API_V4_URL and the runner's network.",
        ) from None
    if not 200 <= status < 300:
        raise GitLabError(
            f"GitLab answered {status} to {what}: {_detail(raw, ref.token)}",
            "Check CI_API_V4_URL points at GitLab's API (…/api/v4).",
        )
    try:
        if len(raw) > MAX_ANSWER:
            raise ValueError("answer too large")
        return json.loads(raw.decode("utf-8"))
    except ValueError:
        shown = f" ({ctype})" if ctype else ""
        raise GitLabError(
            f"GitLab answered {status} to {what} with something that is not JSON{shown}: "
            f"{_detail(raw[:2000], ref.token) or '(empty)'}",
            "Check CI_API_V4_URL points at GitLab's API (…/api/v4), not its web pages or a "
            "proxy's login page.",
        ) from None


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
        if not isinstance(notes, list) or not all(isinstance(n, dict) for n in notes):
            raise GitLabError(
                f"GitLab's list of notes of merge request !{ref.mr_iid} is not a list of notes",
                "Check CI_API_V4_URL points at GitLab's API (…/api/v4).",
            )
        if not notes:
            break
        existing = next((n for n in notes if marker in (n.get("body") or "")), None)
        if len(notes) < 100:
            break
        page += 1
    if existing is not None:
        updated = _request(ref, "PUT", f"{_notes_path(ref)}/{existing['id']}", {"body": text})
        return {"action": "updated", "note_id": _note_id(updated, "PUT")}
    created = _request(ref, "POST", _notes_path(ref), {"body": text})
    return {"action": "created", "note_id": _note_id(created, "POST")}


def _note_id(answer: Any, method: str) -> Any:
    """The id of the note GitLab says it wrote; an answer without one is an error (never
    "created note None")."""
    if isinstance(answer, dict) and answer.get("id") is not None:
        return answer["id"]
    raise GitLabError(
        f"GitLab's answer to {method} of the report note has no note id, so the note may not "
        "have been written",
        "Check CI_API_V4_URL points at GitLab's API (…/api/v4), then run again.",
    )


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

"""`monitoring.notify`: tell people about breaches, their resolution, failed deploys and rollbacks.

Destinations are apprise URLs (Slack, Teams, email, Matrix, webhooks, `json://host/path`, ...)
and/or a GitLab issue. A URL's secrets come from the environment: `${NAME}` inside the URL, or
`env:NAME` for a URL kept whole in a variable. Neither a URL nor a variable's value is ever
printed or recorded: destinations are named by their scheme and position (`slack #1`).

One message per breach episode: the state of each environment (`ok` or `breach`, the episode's
first run, the GitLab issue) is kept in the monitor run records, which travel through git
(`mlops.pipeline.gitrecords`), so the next scheduled job, on another runner, sees it. A breach
while the last state is already `breach` sends nothing; the first run without a breach sends one
"resolved" message (and closes the issue). When every destination fails, the state is not
advanced, so the next run tries again.
"""

from __future__ import annotations

import logging
import os
import re
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from mlops.errors import MlopsError

_VAR_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
INSTALL_HINT = "pip install 'mlops[notify]' (the apprise library)"


@dataclass
class Delivery:
    """One destination's outcome (no URL: it may hold a secret)."""

    destination: str
    ok: bool
    error: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def destinations(
    urls: list[str], environ: dict[str, str] | None = None
) -> tuple[list[tuple[str, str]], list[Delivery]]:
    """`[(label, url)]` with variables filled in, and a failed Delivery for each URL whose
    variable is not set."""
    env = os.environ if environ is None else environ
    out: list[tuple[str, str]] = []
    missing: list[Delivery] = []
    for i, raw in enumerate(urls, 1):
        if raw.startswith("env:"):
            name = raw[4:]
            url = env.get(name, "")
            absent = [] if url else [name]
        else:
            absent = [n for n in _VAR_RE.findall(raw) if not env.get(n)]
            url = _VAR_RE.sub(lambda m: env.get(m.group(1), ""), raw)
        scheme = url.split("://", 1)[0] if "://" in url else "url"
        label = f"{scheme} #{i}"
        if absent:
            missing.append(Delivery(label, False, f"{', '.join(absent)} is not set"))
        else:
            out.append((label, url))
    return out, missing


@contextmanager
def _quiet_apprise():
    """apprise logs failures (sometimes with the host); library code prints nothing."""
    logger = logging.getLogger("apprise")
    saved = (logger.propagate, logger.level)
    logger.propagate = False
    logger.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        logger.propagate, logger.level = saved[0], saved[1]


def send(
    urls: list[str], title: str, body: str, environ: dict[str, str] | None = None
) -> list[Delivery]:
    """Send one message to every URL; one Delivery each (never raises)."""
    found, out = destinations(urls, environ)
    if not found:
        return out
    try:
        import apprise
    except ImportError:
        return out + [
            Delivery(label, False, f"apprise is not installed: {INSTALL_HINT}")
            for label, _ in found
        ]
    with _quiet_apprise():
        for label, url in found:
            app = apprise.Apprise()
            if not app.add(url):
                out.append(Delivery(label, False, "not a notification URL apprise knows"))
                continue
            try:
                ok = bool(app.notify(title=title, body=body))
            except Exception as exc:
                ok = False
                out.append(Delivery(label, False, type(exc).__name__))
                continue
            out.append(
                Delivery(label, ok, "" if ok else "the destination refused or was unreachable")
            )
    return out


def _gitlab_issue(spec: Any) -> list[str] | None:
    """The labels of the GitLab issue option, or None when it is off."""
    opt = spec.gitlab_issue
    if opt is True:
        return ["mlops", "monitoring"]
    if opt is False or opt is None or not getattr(opt, "enabled", False):
        return None
    return list(opt.labels)


def previous_state(root: Path, env: str, exclude: str | None = None) -> dict[str, Any]:
    """The notification state of `env` the last monitor run left ({} when none did)."""
    from mlops.pipeline.records import RunStore

    try:
        records = RunStore(root).list(limit=None, kind="monitor")
    except (OSError, MlopsError):
        return {}
    for rec in records:  # newest first
        if rec.id == exclude or rec.extra.get("env") != env:
            continue
        state = rec.extra.get("notify")
        if isinstance(state, dict) and state.get("state") in ("ok", "breach"):
            return state
    return {}


def _job_link() -> str:
    url = os.environ.get("CI_JOB_URL", "")
    return f"\n\nCI job: {url}" if url.startswith(("http://", "https://")) else ""


def monitor_notice(project: Any, report: Any, run_id: str) -> dict[str, Any]:
    """Notify about a change of `report.env`'s state (breach or resolved), once per episode;
    the state to record with the monitor run, with what was sent (`sent`) and `notes`."""
    spec = project.pipeline.monitoring.notify
    env = report.env
    prev = previous_state(project.root, env, exclude=run_id)
    prev_state = prev.get("state", "ok")
    now = "breach" if report.breached else (None if report.empty else "ok")
    state = {"state": prev_state, "episode": prev.get("episode"), "issue": prev.get("issue")}
    if now is None or now == prev_state:
        note = f"{env} still in breach since run {prev.get('episode')}: no new notification"
        return state | {"sent": [], "notes": [note] if now == "breach" else []}
    event = "breach" if now == "breach" else "resolved"
    name = project.pipeline.model.name
    if event == "breach":
        title = f"mlops: monitoring breach in {env} ({name} {report.version})"
        reasons = "\n".join(f"- {b.message}" for b in report.breaches)
        action = report.action or {}
        body = f"{report.summary()}\n\n{reasons}\n\nAction: {action.get('kind', 'alert')}"
        if action.get("reason"):
            body += f" ({action.get('status', '')}): {action['reason']}"
        episode = run_id
    else:
        title = f"mlops: {env} is healthy again ({name} {report.version})"
        body = f"The breach of run {prev.get('episode')} is over: {report.summary()}"
        episode = None
    body += _job_link()
    deliveries: list[Delivery] = []
    if event in spec.on and spec.urls:
        deliveries = send(spec.urls, title, body)
    issue = state.get("issue")
    labels = _gitlab_issue(spec)
    if labels is not None and event in spec.on:
        issue_delivery, issue = _issue(event, title, body, labels, issue)
        deliveries.append(issue_delivery)
    tried = bool(deliveries)
    delivered = any(d.ok for d in deliveries)
    notes = [
        f"notified {d.destination} of the {event}"
        if d.ok
        else f"could not notify {d.destination}: {d.error}"
        for d in deliveries
    ]
    if tried and not delivered:  # keep the old state: the next run tries again
        notes.append("no destination took the message: the next monitor run sends it again")
        return state | {"sent": [d.to_dict() for d in deliveries], "notes": notes}
    return {
        "state": now,
        "episode": episode,
        "issue": issue,
        "event": event,
        "sent": [d.to_dict() for d in deliveries],
        "notes": notes,
    }


def _issue(event: str, title: str, body: str, labels: list[str], iid: Any) -> tuple[Delivery, Any]:
    """Open (breach) or close (resolved) the episode's GitLab issue."""
    from mlops.adapters import gitlab

    try:
        ref = gitlab.ProjectRef.from_env()
        if event == "breach":
            return Delivery("gitlab issue", True), gitlab.create_issue(ref, title, body, labels)
        if isinstance(iid, int):
            gitlab.close_issue(ref, iid, body)
            return Delivery("gitlab issue", True), None
        return Delivery("gitlab issue", True, "no issue was open"), None
    except MlopsError as exc:
        return Delivery("gitlab issue", False, exc.message), iid


def notify_event(root: Path, record: Any) -> list[Delivery]:
    """Notify about a deploy or rollback record (`deploy_failed`, `rollback`); never raises."""
    from mlops.config.check import load_pipeline

    try:
        spec = load_pipeline(root).monitoring.notify
    except (MlopsError, OSError):
        return []
    event = "deploy_failed" if record.outcome == "failed" else "rollback"
    if event not in spec.on:
        return []
    env = record.extra.get("env", "?")
    title = (
        f"mlops: deploy to {env} failed"
        if event == "deploy_failed"
        else f"mlops: {env} rolled back"
    )
    body = record.message + (f"\n{record.extra['hint']}" if record.extra.get("hint") else "")
    return send(spec.urls, title, body + _job_link())

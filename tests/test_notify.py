"""`monitoring.notify`: one message per breach episode, one when it resolves, to a real local
HTTP endpoint through apprise (`json://127.0.0.1:PORT/`); deploy failures notify too."""

from __future__ import annotations

import json
import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlops.monitor import notify
from mlops.pipeline.records import RunStore
from tests.monitor_helpers import group, serve_rows, set_monitoring

SECRET = "s3cr3t-hook-path-123"


class Endpoint:
    """A webhook on 127.0.0.1 that records every request (path and JSON body)."""

    def __init__(self, status: int = 200) -> None:
        self.received: list[dict[str, Any]] = []
        self.status = status
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                endpoint.received.append({"method": self.command, "path": self.path, "body": body})
                answer = json.dumps({"iid": 5, "id": 77}).encode()  # GitLab's answer to a new issue
                self.send_response(endpoint.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            do_PUT = do_POST

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    def titles(self) -> list[str]:
        return [r["body"].get("title", "") for r in self.received]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def endpoint():
    ep = Endpoint()
    yield ep
    ep.stop()


def test_one_message_per_breach_episode_and_one_when_it_resolves(
    staged: Path, bundle: Path, endpoint: Endpoint, cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOOK_URL", f"json://127.0.0.1:{endpoint.port}/{SECRET}")
    set_monitoring(staged, {"notify": {"urls": ["env:HOOK_URL"]}})
    drifted = staged / "drifted"
    rows, labels = group("Dream")
    serve_rows(bundle, drifted, rows, labels, version="v0.0.1")
    healthy = staged / "healthy"
    rows, labels = group(None, n=200, seed=7)
    serve_rows(bundle, healthy, rows, labels, version="v0.0.1", batch=5)

    outputs = []
    for _ in range(3):  # three scheduled runs of the same breach
        r = cli(["monitor", "--env", "staging", "--log-dir", str(drifted)], cwd=staged)
        assert r.exit_code == 7, r.output
        outputs.append(r.output)
    assert len(endpoint.received) == 1
    assert endpoint.titles()[0].startswith("mlops: monitoring breach in staging")
    assert "input drift" in endpoint.received[0]["body"]["message"]
    assert endpoint.received[0]["path"] == f"/{SECRET}"
    assert "notified json #1 of the breach" in outputs[0]
    assert "no new notification" in outputs[2]
    assert all(SECRET not in o for o in outputs)

    for _ in range(2):  # healthy again: one "resolved", then quiet
        r = cli(["monitor", "--env", "staging", "--log-dir", str(healthy)], cwd=staged)
        assert r.exit_code == 0, r.output
    assert len(endpoint.received) == 2
    assert "healthy again" in endpoint.titles()[1]

    r = cli(["monitor", "--env", "staging", "--log-dir", str(drifted)], cwd=staged)
    assert r.exit_code == 7  # a new episode: a new message
    assert len(endpoint.received) == 3

    # the state lives in the monitor records (which travel through git), never the URL
    monitors = RunStore(staged).list(kind="monitor", limit=None)
    assert monitors[0].extra["notify"]["state"] == "breach"
    assert monitors[1].extra["notify"]["state"] == "ok"
    blobs = [
        (staged / ".mlops/runs.db").read_bytes(),
    ]
    assert all(SECRET.encode() not in b for b in blobs)


def test_a_failed_delivery_is_sent_again_next_time(
    staged: Path, bundle: Path, cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    down = Endpoint(status=500)
    try:
        monkeypatch.setenv("HOOK", f"127.0.0.1:{down.port}")
        set_monitoring(staged, {"notify": {"urls": ["json://${HOOK}/alerts"]}})
        drifted = staged / "drifted"
        rows, labels = group("Dream")
        serve_rows(bundle, drifted, rows, labels, version="v0.0.1")
        for _ in range(2):
            r = cli(["monitor", "--env", "staging", "--log-dir", str(drifted)], cwd=staged)
            assert r.exit_code == 7
            assert "could not notify json #1" in r.output
        assert len(down.received) == 2  # not delivered: tried again
        down.status = 200
        for _ in range(2):
            cli(["monitor", "--env", "staging", "--log-dir", str(drifted)], cwd=staged)
        assert len(down.received) == 3  # delivered once, then deduplicated
    finally:
        down.stop()


def test_destinations_come_from_the_environment_and_are_never_named(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    found, missing = notify.destinations(
        ["env:NOPE", "slack://${A}/${B}", "json://h/${C}"], {"A": "tok1", "B": "tok2"}
    )
    assert found == [("slack #2", "slack://tok1/tok2")]
    assert [(d.destination, d.error) for d in missing] == [
        ("url #1", "NOPE is not set"),
        ("json #3", "C is not set"),
    ]
    out = notify.send(["not-a-url://x"], "t", "b", {})
    assert [d.ok for d in out] == [False]


def test_notify_settings_are_checked(project: Path, cli) -> None:
    for bad, words in [
        ({"urls": ["https://user:hunter2@hooks.example.com/x"]}, "password written"),
        ({"urls": ["hooks.example.com"]}, "scheme://"),
        ({"urls": ["env:1BAD"]}, "env:NAME"),
        ({"url": ["json://x"]}, "url"),
        ({"on": ["sometimes"]}, "on"),
    ]:
        set_monitoring(project, {"notify": bad})
        r = cli(["check"], cwd=project)
        assert r.exit_code == 2, r.output
        assert "monitoring.notify" in r.output and words in r.output, r.output
        assert "hunter2" not in r.output


def test_a_failed_deploy_notifies(
    trained: Path, endpoint: Endpoint, cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOOK_URL", f"json://127.0.0.1:{endpoint.port}/deploys")
    assert cli(["register"], cwd=trained).exit_code == 0
    path = trained / "pipeline.yaml"
    data = yaml.safe_load(path.read_text())
    data["monitoring"] = {"notify": {"urls": ["${HOOK_URL}"]}}
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    for store in (".dvc/cache", ".mlops/remote"):  # the bundle cannot be fetched
        shutil.rmtree(trained / store)
    r = cli(["deploy", "--env", "staging"], cwd=trained)
    assert r.exit_code == 6, r.output
    assert endpoint.titles() == ["mlops: deploy to staging failed"]
    assert "fetch" in endpoint.received[0]["body"]["message"]
    [failed] = [x for x in RunStore(trained).list(limit=None) if x.kind == "deploy"]
    assert failed.outcome == "failed" and failed.exit_code == 6


def test_a_gitlab_issue_per_episode_closed_when_it_resolves(
    staged: Path, bundle: Path, endpoint: Endpoint, cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CI_API_V4_URL", f"http://127.0.0.1:{endpoint.port}/api/v4")
    monkeypatch.setenv("CI_PROJECT_ID", "42")
    monkeypatch.setenv("MLOPS_GITLAB_TOKEN", "glpat-issue-token")
    set_monitoring(staged, {"notify": {"gitlab_issue": {"labels": ["ml", "alert"]}}})
    drifted = staged / "drifted"
    rows, labels = group("Dream")
    serve_rows(bundle, drifted, rows, labels, version="v0.0.1")
    healthy = staged / "healthy"
    rows, labels = group(None, n=200, seed=7)
    serve_rows(bundle, healthy, rows, labels, version="v0.0.1", batch=5)
    for _ in range(2):
        r = cli(["monitor", "--env", "staging", "--log-dir", str(drifted)], cwd=staged)
        assert r.exit_code == 7 and "glpat-issue-token" not in r.output
    [opened] = endpoint.received
    assert (opened["method"], opened["path"]) == ("POST", "/api/v4/projects/42/issues")
    assert opened["body"]["labels"] == "ml,alert" and "breach" in opened["body"]["title"]
    r = cli(["monitor", "--env", "staging", "--log-dir", str(healthy)], cwd=staged)
    assert r.exit_code == 0
    calls = [(x["method"], x["path"]) for x in endpoint.received[1:]]
    assert calls == [
        ("POST", "/api/v4/projects/42/issues/5/notes"),
        ("PUT", "/api/v4/projects/42/issues/5"),
    ]
    assert endpoint.received[2]["body"] == {"state_event": "close"}

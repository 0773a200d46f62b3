"""Secrets never leave through a redirect, an error message or text a server or git echoes back
(issue 13, item 5). Real HTTP servers on 127.0.0.1 (two ports: two origins) and real git remotes."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from mlops.adapters import git, secrets
from mlops.adapters.gitlab import GitLabError, MergeRequestRef, upsert_note
from mlops.errors import ExitCode, GitStateError, MlopsError
from tests.helpers import commit_all
from tests.helpers import git as run_git
from tests.security.run_cli import mlops

TOKEN = "glpat-Sup3rSecretValue-0123456789"


@dataclass
class Server:
    """A local HTTP server whose answer is `answer(method, path) -> (status, headers, body)`;
    it records every request's method, path and headers."""

    answer: Any
    seen: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)
    httpd: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> Server:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                server.seen.append((self.command, self.path, dict(self.headers)))
                status, headers, body = server.answer(self.command, self.path)
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = _handle

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _json(status: int, data: Any) -> tuple[int, dict[str, str], bytes]:
    return status, {"Content-Type": "application/json"}, json.dumps(data).encode()


def gitlab_like(method: str, path: str) -> tuple[int, dict[str, str], bytes]:
    """Answers as GitLab does: an empty list of notes, a created note."""
    if method == "GET":
        return _json(200, [])
    return _json(201, {"id": 77, "body": "x"})


@pytest.fixture
def servers() -> Iterator[list[Server]]:
    started: list[Server] = []
    yield started
    for s in started:
        s.stop()


def _serve(servers: list[Server], answer: Any) -> Server:
    server = Server(answer).start()
    servers.append(server)
    return server


def _ref(url: str) -> MergeRequestRef:
    return MergeRequestRef(api_url=url + "/api/v4", project_id="42", mr_iid="7", token=TOKEN)


def _tokens_seen(server: Server) -> list[str]:
    return [
        v
        for _, _, headers in server.seen
        for k, v in headers.items()
        if k.lower() in ("private-token", "job-token") or TOKEN in v
    ]


@pytest.mark.parametrize("code", [301, 302, 303, 307, 308])
def test_token_never_crosses_a_redirect_to_another_origin(servers, code: int) -> None:
    recorder = _serve(servers, gitlab_like)
    redirector = _serve(servers, lambda m, p: (code, {"Location": recorder.url + p}, b"moved"))
    with pytest.raises(GitLabError) as info:
        upsert_note(_ref(redirector.url), "report")
    assert _tokens_seen(recorder) == [] and recorder.seen == []
    assert info.value.exit_code == ExitCode.USAGE
    assert f"answered {code}" in info.value.message and "not followed" in info.value.message
    assert "CI_API_V4_URL" in info.value.hint
    assert TOKEN not in info.value.message + info.value.hint


def test_a_redirected_post_is_refused_even_to_the_same_origin(servers) -> None:
    def answer(method: str, path: str):
        if method == "GET":
            return _json(200, [])
        return 307, {"Location": "/elsewhere"}, b""

    server = _serve(servers, answer)
    with pytest.raises(GitLabError) as info:
        upsert_note(_ref(server.url), "report")
    assert "answered 307 to POST" in info.value.message
    assert [m for m, _, _ in server.seen] == ["GET", "POST"]  # the POST was not repeated


def test_a_same_origin_get_redirect_is_followed_with_the_token(servers) -> None:
    def answer(method: str, path: str):
        if path.startswith("/old"):
            return 302, {"Location": path.replace("/old", "", 1)}, b""
        return gitlab_like(method, path)

    server = _serve(servers, answer)
    ref = _ref(server.url)
    ref.api_url = server.url + "/old/api/v4"
    with pytest.raises(GitLabError):  # the POST to /old is not redirected by GitLab here:
        upsert_note(ref, "report")  # it answers 302 to it, which is refused
    gets = [(p, h) for m, p, h in server.seen if m == "GET"]
    assert [p.split("?")[0] for p, _ in gets] == [
        "/old/api/v4/projects/42/merge_requests/7/notes",
        "/api/v4/projects/42/merge_requests/7/notes",
    ]
    assert gets[1][1].get("Private-Token") == TOKEN  # same origin: the token went along


def test_an_html_500_is_an_error_with_its_status(servers) -> None:
    page = b"<html><body><h1>502 Bad Gateway</h1>" + b"x" * 5000 + b"</body></html>"
    server = _serve(servers, lambda m, p: (500, {"Content-Type": "text/html"}, page))
    with pytest.raises(GitLabError) as info:
        upsert_note(_ref(server.url), "report")
    assert info.value.exit_code == ExitCode.USAGE
    assert "GitLab answered 500 to GET" in info.value.message
    assert len(info.value.message) < 600


def test_a_200_that_is_not_json_is_an_error(servers) -> None:
    login = b"<html><title>Sign in</title></html>"
    server = _serve(servers, lambda m, p: (200, {"Content-Type": "text/html"}, login))
    with pytest.raises(GitLabError) as info:
        upsert_note(_ref(server.url), "report")
    assert "answered 200 to GET" in info.value.message
    assert "not JSON (text/html)" in info.value.message
    assert "web pages" in info.value.hint


def test_a_created_note_without_an_id_is_an_error_not_note_none(servers) -> None:
    def answer(method: str, path: str):
        if method == "GET":
            return _json(200, [])
        return 201, {"Content-Type": "application/json"}, b""

    server = _serve(servers, answer)
    with pytest.raises(GitLabError) as info:
        upsert_note(_ref(server.url), "report")
    assert "(empty)" in info.value.message or "no note id" in info.value.message


def test_a_token_echoed_at_the_truncation_point_is_masked_whole(servers) -> None:
    """The old code cut the server's text at 300 characters, then masked: a token straddling
    the cut printed its first characters."""
    body = ("e" * 290 + TOKEN + " and more").encode()
    server = _serve(servers, lambda m, p: (500, {"Content-Type": "text/plain"}, body))
    with pytest.raises(GitLabError) as info:
        upsert_note(_ref(server.url), "report")
    assert TOKEN[:8] not in info.value.message
    assert "[MASKED]" in info.value.message


def test_report_post_through_the_cli_exits_2_on_an_html_answer(servers, tmp_path: Path) -> None:
    """The CLI's mapping: the same answer as above through `mlops report --post` is exit 2 with
    the status shown (a project that never ran still has a report to post)."""
    from mlops import api

    server = _serve(servers, lambda m, p: (500, {"Content-Type": "text/html"}, b"<h1>oops</h1>"))
    root = tmp_path / "p"
    api.init(root)
    commit_all(root, "start")
    env = {
        "CI_API_V4_URL": server.url + "/api/v4",
        "CI_PROJECT_ID": "42",
        "CI_MERGE_REQUEST_IID": "7",
        "MLOPS_GITLAB_TOKEN": TOKEN,
    }
    res = mlops(["report", "--post"], root, env=env)
    assert res.code == 2, res.text
    assert "GitLab answered 500" in res.err and TOKEN not in res.text


# ---- masking ------------------------------------------------------------------------------


def test_mask_covers_every_secret_looking_variable() -> None:
    env = {
        "MLOPS_GIT_TOKEN": "tok-abcdef",
        "MY_DB_PASSWORD": "hunter22",
        "AWS_SECRET_ACCESS_KEY": "wJalr/XUtn+FEMI",
        "SOME_API_KEY": "k3y-k3y-k3y",
        "DEBUG": "verbose",  # not a secret name
        "SHORT_TOKEN": "1",  # too short to mask
    }
    text = (
        "a tok-abcdef b hunter22 c wJalr%2FXUtn%2BFEMI d k3y-k3y-k3y e verbose 1 "
        "https://oauth2:whatever@gitlab.example.com/g/p.git"
    )
    masked = secrets.mask(text, env=env)
    for value in ("tok-abcdef", "hunter22", "wJalr", "k3y-k3y", "whatever"):
        assert value not in masked
    assert "verbose 1" in masked and "https://***@gitlab.example.com" in masked


def test_errors_mask_their_message_and_hint(monkeypatch) -> None:
    monkeypatch.setenv("MLOPS_GIT_TOKEN", "t0ken-in-an-error")
    exc = MlopsError("echo: t0ken-in-an-error", "use t0ken-in-an-error")
    assert "t0ken" not in exc.message + exc.hint + str(exc)


def test_clip_masks_before_cutting(monkeypatch) -> None:
    monkeypatch.setenv("MLOPS_GITLAB_TOKEN", TOKEN)
    assert TOKEN[:6] not in secrets.clip("x" * 295 + TOKEN, 300)
    assert TOKEN[-6:] not in secrets.clip(TOKEN + "x" * 295, 300, keep="tail")


# ---- git remotes that echo the credential --------------------------------------------------


def _bare_with_echoing_hook(tmp_path: Path) -> Path:
    bare = tmp_path / "remote.git"
    run_git(tmp_path, "init", "-q", "--bare", str(bare))
    hook = bare / "hooks" / "pre-receive"
    hook.write_text(
        "#!/bin/sh\n"
        'echo "remote says: your token is $MLOPS_GIT_TOKEN"\n'
        'echo "https://oauth2:$MLOPS_GIT_TOKEN@gitlab.example.com/g/p.git" >&2\n'
        "exit 1\n"
    )
    hook.chmod(0o755)
    return bare


def test_git_failure_text_from_the_remote_is_masked(tmp_path: Path, monkeypatch) -> None:
    """A pre-receive hook (it runs with the pusher's environment on a local remote, as a
    hostile server would with the credential it was sent) prints the token: git's message
    reaches mlops' error masked."""
    monkeypatch.setenv("MLOPS_GIT_TOKEN", "glpat-git-0123456789")
    bare = _bare_with_echoing_hook(tmp_path)
    work = tmp_path / "work"
    work.mkdir()
    run_git(work, "init", "-q")
    (work / "f").write_text("x")
    commit_all(work, "c")
    res = git.push(work, str(bare), ["HEAD:refs/heads/main"])
    assert res.code != 0 and "your token is" in res.err  # the hook ran and echoed
    assert "glpat-git" not in res.err
    with pytest.raises(GitStateError) as info:
        git.run(work, "push", str(bare), "HEAD:refs/heads/main")
    assert "glpat-git" not in info.value.message and "[MASKED]" in info.value.message


@pytest.mark.slow
def test_cli_never_prints_the_git_token_a_remote_echoes(trained: Path, tmp_path: Path) -> None:
    """`mlops register --push` through the CLI against a remote (an `ext::` command remote,
    answering as a proxy or server would) that prints the credential and fails."""
    token = "glpat-cli-echo-9876543210"
    root = trained
    script = tmp_path / "remote.sh"
    script.write_text(
        '#!/bin/sh\necho "fatal: auth failed for oauth2:$MLOPS_GIT_TOKEN" >&2\nexit 128\n'
    )
    script.chmod(0o755)
    run_git(root, "config", "protocol.ext.allow", "always")
    run_git(root, "remote", "add", "origin", f"ext::{script}")
    res = mlops(
        ["register", "--push", "--version", "v1.0.0"],
        root,
        env={"MLOPS_GIT_TOKEN": token},
    )
    assert res.code == ExitCode.GIT_STATE, res.text
    assert "auth failed for oauth2:[MASKED]" in res.err  # git's message is shown, masked
    assert token not in res.text and token[:10] not in res.text, res.text


def test_short_values_are_not_masked() -> None:
    env = {"MLOPS_GIT_TOKEN": "abc", "DEBUG_KEY": "1"}  # shorter than MIN_LENGTH: ignored
    assert secrets.mask("abc def 1", env=env) == "abc def 1"

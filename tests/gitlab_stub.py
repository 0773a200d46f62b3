"""A local HTTP server standing in for GitLab's REST API (merge-request notes); it records requests.

GitLab itself cannot run here; this is the one stand-in the tests allow. It speaks the subset of
API v4 that mlops uses: list, create and update notes of a merge request.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

NOTES = re.compile(r"^/api/v4/projects/([^/]+)/merge_requests/(\d+)/notes(?:/(\d+))?(?:\?.*)?$")


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class GitLabStub:
    token: str = "glpat-test-token"
    requests: list[Recorded] = field(default_factory=list)
    notes: dict[tuple[str, str], list[dict]] = field(default_factory=dict)
    server: ThreadingHTTPServer | None = None

    @property
    def api_url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/api/v4"

    def env(self, project: str = "42", mr: str = "7") -> dict[str, str]:
        return {
            "CI_API_V4_URL": self.api_url,
            "CI_PROJECT_ID": project,
            "CI_MERGE_REQUEST_IID": mr,
            "MLOPS_GITLAB_TOKEN": self.token,
        }

    def start(self) -> GitLabStub:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, code: int, payload: Any) -> None:
                data = json.dumps(payload).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                body = json.loads(raw) if raw else None
                stub.requests.append(Recorded(self.command, self.path, dict(self.headers), body))
                if self.headers.get("PRIVATE-TOKEN") != stub.token:
                    return self._send(401, {"message": "401 Unauthorized"})
                m = NOTES.match(self.path)
                if not m:
                    return self._send(404, {"message": "404 Not Found"})
                key = (m.group(1), m.group(2))
                notes = stub.notes.setdefault(key, [])
                if self.command == "GET":
                    return self._send(200, notes)
                if self.command == "POST":
                    note = {"id": 1000 + len(notes), "body": body["body"]}
                    notes.append(note)
                    return self._send(201, note)
                if self.command == "PUT" and m.group(3):
                    for note in notes:
                        if note["id"] == int(m.group(3)):
                            note["body"] = body["body"]
                            return self._send(200, note)
                return self._send(404, {"message": "404 Note Not Found"})

            do_GET = do_POST = do_PUT = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

"""`mlops serve --env staging` on a local-directory target with nothing deployed yet: it starts,
answers `/ready` 503 saying what deploys a version, and switches to the first deployment
(`mlops deploy`, a separate process) without a restart. Real parts: git, DVC, scikit-learn,
uvicorn on 127.0.0.1."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.serve_helpers import ROW, free_port, stop
from tests.test_deploy import _released_template, python_env  # noqa: F401  (a fixture)

pytestmark = pytest.mark.slow


def _wait_status(url: str, proc: subprocess.Popen, want: int, seconds: float = 120) -> dict:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()[0]
        try:
            r = httpx.get(url, timeout=5)
            if r.status_code == want:
                return r.json()
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{url} never answered {want}")


def test_serve_env_before_the_first_deployment_waits_then_switches(
    tmp_path: Path,
    _released_template: Path,  # noqa: F811
):
    root = tmp_path / "project"
    shutil.copytree(_released_template, root, symlinks=True)
    assert not (root / ".mlops" / "envs" / "staging").exists()  # never deployed
    port = free_port()
    env = dict(python_env(), PYTHONUNBUFFERED="1")
    cmd = [sys.executable, "-m", "mlops", "serve", "--env", "staging", "--poll", "0.2",
           "--port", str(port)]  # fmt: skip
    server = subprocess.Popen(cmd, cwd=root, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        body = _wait_status(f"{base}/ready", server, 503)
        assert body["ready"] is False
        assert "nothing is deployed" in body["detail"]
        assert "mlops deploy --env staging" in body["detail"]
        assert httpx.get(f"{base}/health", timeout=5).status_code == 200  # alive: no crash loop
        r = httpx.post(f"{base}/predict", json=[ROW], timeout=5)
        assert r.status_code == 503
        deployed = subprocess.run(
            [sys.executable, "-m", "mlops", "deploy", "--env", "staging", "--no-push"],
            cwd=root, env=python_env(), capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        assert deployed.returncode == 0, deployed.stdout + deployed.stderr
        body = _wait_status(f"{base}/ready", server, 200)
        assert body["version"] == "v0.0.2"
        r = httpx.post(f"{base}/predict", json=[ROW], timeout=5)
        assert r.status_code == 200, r.text
        assert server.poll() is None
    finally:
        out = stop(server)
    assert "Traceback" not in out, out
    assert os.path.islink(root / ".mlops" / "envs" / "staging" / "current")

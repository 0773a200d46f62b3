"""The serving image's Dockerfile, without a container engine (none runs here): its install
commands run in a fresh virtual environment, then its start command serves a deployed target,
its HEALTHCHECK passes, and SIGTERM ships the log. Not exercised: the base image, `useradd`,
USER (the test runs as whoever runs the suite) and kaniko itself."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from mlops.deploy.target import open_target
from mlops.monitor.segments import read_segments
from tests.conftest import REPO_ROOT
from tests.serve_helpers import ROW, build_bundle, free_port

pytestmark = pytest.mark.slow
DOCKERFILE = REPO_ROOT / "Dockerfile.serve"


def instructions(text: str) -> list[tuple[str, str, str]]:
    """(instruction, arguments, the comment just above it) of a Dockerfile, lines joined."""
    out, comment, pending = [], "", ""
    for line in text.splitlines():
        if not pending and line.lstrip().startswith("#"):
            comment = line.lstrip("# ").strip()
            continue
        if not line.strip():
            continue
        pending += line.rstrip("\\").rstrip() + " " if line.endswith("\\") else line
        if line.endswith("\\"):
            continue
        word, _, rest = pending.strip().partition(" ")
        out.append((word.upper(), rest.strip(), comment))
        pending, comment = "", ""
    return out


def test_the_template_and_the_repository_ship_the_same_dockerfile():
    template = REPO_ROOT / "mlops" / "templates" / "Dockerfile.serve"
    assert DOCKERFILE.read_text() == template.read_text()
    steps = instructions(DOCKERFILE.read_text())
    kinds = [k for k, _, _ in steps]
    assert kinds[0] == "FROM" and "USER" in kinds and "HEALTHCHECK" in kinds
    user = next(a for k, a, _ in steps if k == "USER")
    assert not user.startswith(("0", "root"))  # non-root
    assert "COPY" not in kinds and "ADD" not in kinds  # nothing of the project: no model inside


def test_install_and_start_commands_in_a_fresh_venv(tmp_path: Path):
    steps = instructions(DOCKERFILE.read_text())
    args = dict(
        (a.split("=", 1)[0], a.split("=", 1)[1].strip('"') if "=" in a else "")
        for k, a, _ in steps
        if k == "ARG"
    )
    env_line = next(a for k, a, _ in steps if k == "ENV")
    image_env = dict(re.findall(r"(\w+)=(\S+)", env_line))
    install = next(a for k, a, c in steps if k == "RUN" and c == "install")
    start = next(a for k, a, c in steps if k == "CMD" and c == "start")
    health = next(a for k, a, _ in steps if k == "HEALTHCHECK").split(" CMD ", 1)[1]
    src = tmp_path / "src"  # a copy of this checkout's package: the build writes beside it
    skip = shutil.ignore_patterns("__pycache__")
    shutil.copytree(REPO_ROOT / "mlops", src / "mlops", ignore=skip)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO_ROOT / name, src / name)
    venv = tmp_path / "opt-mlops"
    home = tmp_path / "home"
    home.mkdir()
    env = {
        "PATH": f"{venv}/bin:{Path(sys.executable).parent}:/usr/bin:/bin",
        "HOME": str(home),
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "PIP_NO_CACHE_DIR": "1",
        "MLOPS_PIP_SPEC": f"mlops[serve] @ {src.as_uri()}",  # this checkout, as CI would
        "MLOPS_EXTRA_PIP": args["MLOPS_EXTRA_PIP"],
    }
    for key in ("PIP_FIND_LINKS", "PIP_INDEX_URL", "PIP_CERT", "PIP_DEFAULT_TIMEOUT"):
        if key in os.environ:
            env[key] = os.environ[key]
    run = subprocess.run(
        ["sh", "-c", install.replace("/opt/mlops", str(venv))],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "mlops 0." in run.stdout
    # a deployed target the start command follows
    bundle = build_bundle(tmp_path / "bundle")
    target = open_target(tmp_path / "target", create=True)
    target.install(bundle, "v1.0.0", name="penguins-classifier", commit="1" * 40)
    target.switch("v1.0.0")
    port = free_port()
    work = tmp_path / "work"
    work.mkdir()
    run_env = {**env, **image_env, "MLOPS_TARGET": str(target.root), "MLOPS_PORT": str(port)}
    run_env["PATH"] = env["PATH"]
    run_env["HOME"] = str(work)
    # the image listens on 0.0.0.0 (a pod); this machine's tests stay on 127.0.0.1
    assert "--host 0.0.0.0" in start
    proc = subprocess.Popen(
        ["sh", "-c", start.replace("--host 0.0.0.0", "--host 127.0.0.1")],
        env=run_env,
        cwd=work,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            try:
                if httpx.get(f"http://127.0.0.1:{port}/ready", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the start command did not become ready"
            time.sleep(0.2)
        check = subprocess.run(["sh", "-c", health], env=run_env, capture_output=True, timeout=30)
        assert check.returncode == 0, check.stderr
        r = httpx.post(f"http://127.0.0.1:{port}/predict", json=[ROW], timeout=10)
        assert r.status_code == 200 and r.json()["version"] == "v1.0.0"
    finally:
        proc.send_signal(signal.SIGTERM)  # `exec` in CMD: the signal reaches mlops itself
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode in (0, -signal.SIGTERM), out
    shipped = read_segments(str(target.root))  # the start command ships its log to the target
    assert shipped.predictions.num_rows == 1

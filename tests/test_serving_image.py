"""The serving image's Dockerfile, without a container engine (none runs here): its install
commands run in a fresh virtual environment, its project stage exports a real git repository's
own model code at one commit, then its start command serves a deployed target whose bundle pins
that code (the HEALTHCHECK passes, predictions over HTTP equal the model's, SIGTERM ships the
log); the same start command with the project exported at a later commit refuses the bundle
(exit 6). Not exercised: the base image, `useradd`, USER (the test runs as whoever runs the
suite), the stages' file-system layering and kaniko itself."""

from __future__ import annotations

import json
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
from tests.codepin_helpers import FEATURES_PY, HELPERS_PY, bundle_pinning
from tests.conftest import REPO_ROOT
from tests.helpers import commit_all
from tests.serve_helpers import ROW, free_port, penguins

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


def stages(steps: list[tuple[str, str, str]]) -> dict[str, list[tuple[str, str, str]]]:
    """The build stages by name (`FROM x AS name`; the last one is "final"), each inheriting
    the steps of the stage it starts from."""
    out: dict[str, list] = {}
    name, current = "", []
    for step in steps:
        if step[0] == "FROM":
            if name:
                out[name] = current
            base, _, alias = step[1].partition(" AS ")
            name = alias.strip() or "final"
            current = list(out.get(base.strip(), []))
        current.append(step)
    out[name] = current
    return out


def image_env(steps: list[tuple[str, str, str]], build_args: dict[str, str]) -> dict[str, str]:
    """The ENV a stage sets, `$ARG`s replaced by the build's arguments."""
    env: dict[str, str] = {}
    for kind, args, _ in steps:
        if kind == "ENV":
            for key, value in re.findall(r"(\w+)=(\S+)", args):
                env[key] = re.sub(r"\$(\w+)", lambda m: build_args.get(m.group(1), ""), value)
    return env


def test_the_template_and_the_repository_ship_the_same_dockerfile():
    template = REPO_ROOT / "mlops" / "templates" / "Dockerfile.serve"
    assert DOCKERFILE.read_text() == template.read_text()
    by_stage = stages(instructions(DOCKERFILE.read_text()))
    assert list(by_stage) == ["mlops", "project", "final"]
    final = by_stage["final"]
    kinds = [k for k, _, _ in final]
    assert "USER" in kinds and "HEALTHCHECK" in kinds
    user = next(a for k, a, _ in final if k == "USER")
    assert not user.startswith(("0", "root"))  # non-root
    # the checkout enters the project stage only; the image takes the exported code from it
    copies = [a for k, a, _ in final if k in ("COPY", "ADD")]
    assert copies == ["--from=project /opt/project /opt/project"]
    assert "ADD" not in [k for k, _, _ in by_stage["project"]]
    assert image_env(final, {})["MLOPS_PROJECT_DIR"] == "/opt/project"


def _project_at_two_commits(project: Path) -> tuple[str, str]:
    """The example project with its own transformer (importing a helper module of the project)
    trusted in pipeline.yaml: commit A; the transformer's source edited: commit B."""
    (project / "helpers.py").write_text(HELPERS_PY)
    (project / "features.py").write_text(FEATURES_PY)
    pipeline = project / "pipeline.yaml"
    text = pipeline.read_text()
    assert "\nmodel:\n" in text
    pipeline.write_text(
        text.replace("\nmodel:\n", "\nmodel:\n  trusted_types: [features.BillRatio]\n")
    )
    first = commit_all(project, "Our own BillRatio feature")
    (project / "features.py").write_text(FEATURES_PY.replace("X = X.copy()", "X = X.copy()  # B"))
    second = commit_all(project, "BillRatio, edited")
    return first, second


def test_install_and_start_commands_in_a_fresh_venv(tmp_path: Path, project: Path, monkeypatch):
    by_stage = stages(instructions(DOCKERFILE.read_text()))
    steps = by_stage["final"]
    args = dict(
        (a.split("=", 1)[0], a.split("=", 1)[1].strip('"') if "=" in a else "")
        for k, a, _ in steps
        if k == "ARG"
    )
    install = next(a for k, a, c in steps if k == "RUN" and c == "install")
    export = next(a for k, a, c in by_stage["project"] if k == "RUN" and c == "project code")
    checkout = next(a for k, a, _ in by_stage["project"] if k == "COPY").split()[1]
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
    # the install runs while the project's repository and its bundle are made (both ~1 s)
    building = subprocess.Popen(
        ["sh", "-c", install.replace("/opt/mlops", str(venv))],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        first, second = _project_at_two_commits(project)
        subprocess.run(["git", "checkout", "-q", first], cwd=project, check=True)
        bundle, pipe = bundle_pinning(project, tmp_path / "bundle", monkeypatch, commit=first)
    finally:
        out, _ = building.communicate(timeout=1200)
    assert building.returncode == 0, out[-5000:]
    assert "mlops 0." in out

    def image_at(commit: str) -> dict[str, str]:
        """Build the project stage from the checkout at `commit` (the build context), as the
        Dockerfile does; the final stage's environment pointing at what it exported."""
        context = tmp_path / f"context-{commit[:8]}"
        context.mkdir()
        subprocess.run(
            f"git archive {commit} | tar -x -C {context}", shell=True, cwd=project, check=True
        )
        exported = tmp_path / f"project-{commit[:8]}"
        command = export.replace(checkout, str(context)).replace("/opt/project", str(exported))
        run = subprocess.run(
            ["sh", "-c", command.replace("/opt/mlops", str(venv))],
            env={**env, "PROJECT_COMMIT": commit},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert run.returncode == 0, run.stdout + run.stderr
        assert sorted(p.name for p in exported.iterdir()) == [
            "PROJECT_CODE.json",
            "features.py",
            "helpers.py",  # imported by features.py: exported too
            "pipeline.yaml",
        ]
        assert json.loads((exported / "PROJECT_CODE.json").read_text())["commit"] == commit
        final = image_env(steps, {"PROJECT_COMMIT": commit})
        final = {k: v for k, v in final.items() if k not in ("PATH", "HOME")}  # this host's
        return {k: v.replace("/opt/project", str(exported)) for k, v in final.items()}

    # a deployed target the start command follows
    target = open_target(tmp_path / "target", create=True)
    target.install(bundle, "v1.0.0", name="penguins-classifier", commit=first)
    target.switch("v1.0.0")
    port = free_port()
    work = tmp_path / "work"
    work.mkdir()
    run_env = {**env, **image_at(first), "MLOPS_TARGET": str(target.root), "MLOPS_PORT": str(port)}
    run_env["HOME"] = str(work)
    # the image listens on 0.0.0.0 (a pod); this machine's tests stay on 127.0.0.1
    assert "--host 0.0.0.0" in start
    local_start = start.replace("--host 0.0.0.0", "--host 127.0.0.1")
    proc = subprocess.Popen(
        ["sh", "-c", local_start],
        env=run_env,
        cwd=work,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    rows = penguins().dropna().drop(columns=["species", "year"]).iloc[::25]
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
        body = json.loads(rows.to_json(orient="records"))
        r = httpx.post(f"http://127.0.0.1:{port}/predict", json=[ROW, *body], timeout=10)
        assert r.status_code == 200 and r.json()["version"] == "v1.0.0"
        frame = rows.__class__([ROW, *body])[list(rows.columns)]
        assert r.json()["predictions"] == [str(p) for p in pipe.predict(frame)]
    finally:
        proc.send_signal(signal.SIGTERM)  # `exec` in CMD: the signal reaches mlops itself
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode in (0, -signal.SIGTERM), out
    shipped = read_segments(str(target.root))  # the start command ships its log to the target
    assert shipped.predictions.num_rows == 1 + len(rows)

    # the image of the later commit: its features.py is not what v1.0.0 was trained with
    refused = subprocess.run(
        ["sh", "-c", local_start],
        env={**run_env, **image_at(second), "MLOPS_PORT": str(free_port())},
        cwd=work,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert refused.returncode == 6, refused.stdout + refused.stderr
    assert "features.py: sha256" in refused.stderr and "trained with" in refused.stderr

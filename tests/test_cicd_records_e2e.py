"""The run records CI makes travel: gitlab-ci-local runs the REAL `.gitlab-ci.yml`'s `register`
job (shell executor) against a bare `origin`; a fresh clone then lists the job's runs.

Kept apart from tests/test_cicd_e2e.py (which drives the whole loop) so that each changes alone.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT
from tests.helpers import commit_all, git
from tests.registry_helpers import origin_for

pytestmark = [pytest.mark.slow, pytest.mark.e2e]
TOOLS = REPO_ROOT / ".tools"
GCL = TOOLS / "gcl" / "node_modules" / ".bin" / "gitlab-ci-local"
NODE_BIN = TOOLS / "node" / "node_modules" / ".bin"
PREDEFINED = "CI_PIPELINE_SOURCE,CI_COMMIT_BRANCH,CI_COMMIT_TAG,CI_PROJECT_ID,CI_API_V4_URL"


def _gcl(repo: Path, *args: str, variables: dict[str, str]) -> str:
    missing = [str(p) for p in (GCL, NODE_BIN / "node") if not p.exists()]
    if missing:
        pytest.fail(f"end-to-end tools missing: {', '.join(missing)}; run scripts/test.sh")
    env = dict(os.environ, GCL_IGNORE_PREDEFINED_VARS=PREDEFINED)
    env["PATH"] = os.pathsep.join([str(NODE_BIN), str(Path(sys.executable).parent), env["PATH"]])
    argv = [str(GCL), "--force-shell-executor", "--no-json-schema-validation"]
    for key, value in variables.items():
        argv += ["--variable", f"{key}={value}"]
    proc = subprocess.run([*argv, *args], cwd=repo, env=env, capture_output=True, text=True)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    return out


def _record_ids(root: Path) -> set[str]:
    listing = git(root, "for-each-ref", "--format=%(refname)", "refs/mlops/records/")
    return {line.rsplit("/", 1)[1] for line in listing.splitlines()}


def test_the_runs_ci_makes_appear_in_a_fresh_clone(trained: Path, tmp_path: Path, cli) -> None:
    if shutil.which("rsync") is None:
        pytest.fail("rsync is missing (gitlab-ci-local needs it)")
    shutil.copy(REPO_ROOT / ".gitlab-ci.yml", trained / ".gitlab-ci.yml")
    commit_all(trained, "CI/CD")
    origin = origin_for(trained, tmp_path)
    before = _record_ids(trained)
    out = _gcl(trained, "register", variables={"CI_PIPELINE_SOURCE": "push"})
    assert "PASS  register" in out
    made_by_ci = _record_ids(trained) - before
    assert made_by_ci  # `mlops run` in the job recorded a run

    clone = tmp_path / "teammate"
    git(tmp_path, "clone", "-q", str(origin), str(clone))
    res = cli(["runs", "pull"], cwd=clone)
    assert res.exit_code == 0, res.output
    listed = json.loads(cli(["runs", "list", "--json"], cwd=clone).output)
    assert made_by_ci <= {r["id"] for r in listed}
    assert any(r["kind"] == "run" and r["metrics"] for r in listed if r["id"] in made_by_ci)
    # from now on a plain `git fetch` brings the records too
    assert "+refs/mlops/*:refs/mlops/*" in git(clone, "config", "--get-all", "remote.origin.fetch")

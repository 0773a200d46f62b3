"""The whole loop, end to end: gitlab-ci-local runs the REAL `.gitlab-ci.yml` (the repository's,
in a copy of the trained example project) with the shell executor, against a bare repository as
`origin` and a local stand-in for GitLab's API.

merge request (report posted) -> merge -> default branch (results committed, version registered,
staging deployed) -> `mlops promote` (a merge request by push options) -> merge -> production
deployed and its stage tag on origin -> the tag's own pipeline (nothing to do) -> schedule.

The tools come from `scripts/install-e2e-tools.sh` (called by `scripts/test.sh`); when they are
missing this test fails, it does not skip.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mlops.adapters.gitlab import MARKER
from mlops.deploy.target import Target
from tests.conftest import REPO_ROOT
from tests.gitlab_stub import GitLabStub
from tests.helpers import commit_all, git, replace_in
from tests.registry_helpers import NAME, origin_for, refs

pytestmark = [pytest.mark.slow, pytest.mark.e2e]
TOOLS = REPO_ROOT / ".tools"
GCL = TOOLS / "gcl" / "node_modules" / ".bin" / "gitlab-ci-local"
NODE_BIN = TOOLS / "node" / "node_modules" / ".bin"
TOKEN = "glpat-e2e-secret-token"
PREDEFINED = "CI_PIPELINE_SOURCE,CI_COMMIT_BRANCH,CI_COMMIT_TAG,CI_PROJECT_ID,CI_API_V4_URL"


@pytest.fixture(scope="module")
def tools() -> None:
    missing = [str(p) for p in (GCL, NODE_BIN / "node") if not p.exists()]
    if shutil.which("rsync") is None:
        missing.append("rsync")
    if missing:
        pytest.fail(
            f"end-to-end tools missing: {', '.join(missing)}. Install them with "
            "`bash scripts/install-e2e-tools.sh` (scripts/test.sh does it first)."
        )


def gcl(
    repo: Path, *args: str, variables: dict[str, str | None] | None = None, schema: bool = False
):
    """Run gitlab-ci-local in `repo` (jobs run in the repository itself, shell executor)."""
    env = dict(os.environ, GCL_IGNORE_PREDEFINED_VARS=PREDEFINED)
    env["PATH"] = os.pathsep.join([str(NODE_BIN), str(Path(sys.executable).parent), env["PATH"]])
    argv = [str(GCL), "--force-shell-executor"]
    if not schema:
        argv.append("--no-json-schema-validation")
    for key, value in (variables or {}).items():
        argv += ["--unset-variable", key] if value is None else ["--variable", f"{key}={value}"]
    proc = subprocess.run([*argv, *args], cwd=repo, env=env, capture_output=True, text=True)
    return proc


def run_jobs(repo: Path, *jobs: str, **kw) -> str:
    proc = gcl(repo, *jobs, **kw)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-4000:]
    for job in jobs:
        assert f"PASS  {job}" in output, output[-4000:]
    return output


def with_ci(root: Path, tmp_path: Path) -> tuple[Path, Path]:
    """`root` with the repository's .gitlab-ci.yml committed, and a bare `origin`."""
    shutil.copy(REPO_ROOT / ".gitlab-ci.yml", root / ".gitlab-ci.yml")
    commit_all(root, "CI/CD")
    origin = origin_for(root, tmp_path)  # advertises push options; logs every push
    return root, origin


@pytest.fixture
def repo(trained: Path, tmp_path: Path) -> tuple[Path, Path]:
    """The trained example project with the repository's CI/CD, and its bare origin."""
    return with_ci(trained, tmp_path)


# merge-request pipelines have no CI_COMMIT_BRANCH on GitLab (gitlab-ci-local sets the checkout's)
MR = {"CI_PIPELINE_SOURCE": "merge_request_event", "CI_MERGE_REQUEST_IID": "7",
      "CI_MERGE_REQUEST_TARGET_BRANCH_NAME": "main",
      "CI_MERGE_REQUEST_SOURCE_BRANCH_NAME": "feature", "CI_COMMIT_BRANCH": None}  # fmt: skip
PUSH = {"CI_PIPELINE_SOURCE": "push"}


def test_merge_request_main_promotion_and_tag_pipelines(tools, repo, cli):
    root, origin = repo
    stub = GitLabStub(token=TOKEN).start()
    try:
        # ---- a merge request: the pipeline runs, the report goes to the merge request
        git(root, "checkout", "-q", "-b", "feature")
        params = root / "params.yaml"
        replace_in(params, "C: 1.0", "C: 0.05")
        commit_all(root, "Regularise more")
        git(root, "push", "-q", "origin", "feature")
        gitlab = {**stub.env(project="42", mr="7"), **MR}
        out = run_jobs(root, "check", "run", "report", variables=gitlab, schema=True)
        [get, post] = stub.requests
        assert (get.method, post.method) == ("GET", "POST")
        assert post.path == "/api/v4/projects/42/merge_requests/7/notes"
        body = post.body["body"]
        assert body.startswith(MARKER) and f"## mlops report: {NAME} on `feature`" in body
        assert "| train.C | 1 | **0.05** |" in body  # against production (none) and main
        assert "Gates: **passed**" in body
        assert (root / "reports/merge-request.md").read_text() in body
        assert TOKEN not in out and TOKEN not in state_files(root)
    finally:
        stub.stop()
    # gitlab-ci-local runs every job in this work tree: the merge request's outputs stay here,
    # as a runner's caches would restore them, so the default branch's run has nothing to redo
    (root / "reports/merge-request.md").unlink()

    # ---- merged: results committed, the version registered, staging deployed
    git(root, "checkout", "-q", "main")
    git(root, "merge", "-q", "--no-ff", "feature", "-m", "Merge branch 'feature'")
    git(root, "push", "-q", "origin", "main")
    (origin / "push-log.txt").unlink(missing_ok=True)
    out = run_jobs(root, "register", "deploy-staging", variables=PUSH)
    assert git(origin, "log", "-1", "--format=%s", "main").startswith(f"Run results of {NAME}")
    pushes = (origin / "push-log.txt").read_text()
    assert "option: ci.skip" in pushes  # the results commit starts no pipeline of its own
    on_origin = refs(origin)
    assert f"refs/tags/{NAME}@v0.0.1" in on_origin
    assert f"refs/tags/{NAME}#staging#1" in on_origin
    staging = Target(root / ".mlops/envs/staging")
    assert staging.current_version() == "v0.0.1"
    assert staging.load().metadata["params"]["train"]["C"] == 0.05
    assert staging.deployment()["commit"] == git(origin, "rev-parse", "main")

    # ---- promotion: a merge request opened by push options, then merged
    git(root, "pull", "-q", "--ff-only", "origin", "main")
    result = cli(["promote", NAME, "v0.0.1", "--to", "production"], cwd=root)
    assert result.exit_code == 0, result.output
    pushes = (origin / "push-log.txt").read_text()
    assert "option: merge_request.create" in pushes
    branch = f"promote/{NAME}-production-v0.0.1"
    git(root, "fetch", "-q", "origin", branch)
    git(root, "merge", "-q", "--ff-only", "FETCH_HEAD")
    git(root, "push", "-q", "origin", "main")
    out = run_jobs(root, "register", "deploy-production", variables=PUSH)
    assert "nothing to register" in out  # a promotion is not a new version
    production = Target(root / ".mlops/envs/production")
    assert production.current_version() == "v0.0.1"
    [tag] = [r for r in refs(origin) if r.startswith(f"refs/tags/{NAME}#production#")]
    tag = tag.removeprefix("refs/tags/")
    assert git(origin, "rev-parse", f"{tag}^{{commit}}") == git(
        origin, "rev-parse", f"{NAME}@v0.0.1^{{commit}}"
    )
    shown = json.loads(cli(["registry", "show", "--json"], cwd=root).output)[NAME]
    assert shown["stage"] == {"staging": "v0.0.1", "production": "v0.0.1"}

    # ---- the pushed production tag starts its own pipeline: production already runs it
    tag_pipeline = {"CI_COMMIT_TAG": tag, "CI_COMMIT_BRANCH": None}
    out = run_jobs(root, "deploy-production", variables=tag_pipeline)
    assert "production already runs" in out and "nothing to do" in out
    assert len(production.history()) == 1


def state_files(repo: Path) -> str:
    """Everything gitlab-ci-local kept: job logs, scripts, the expanded configuration."""
    files = (p for p in (repo / ".gitlab-ci-local").rglob("*") if p.is_file())
    return "".join(p.read_text(errors="replace") for p in files)


def listed(repo: Path, variables: dict[str, str | None]) -> set[str]:
    proc = gcl(repo, "--list-json", variables=variables)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    start = proc.stdout.index("[")
    return {j["name"] for j in json.loads(proc.stdout[start:]) if j["when"] != "never"}


def test_workflow_rules_start_one_pipeline_per_event(tools, project: Path, tmp_path: Path):
    root, _ = with_ci(project, tmp_path)
    mr = listed(root, MR)
    assert mr == {"check", "run", "test", "report"}
    main = listed(root, PUSH)
    assert {"register", "deploy-staging", "rollback-production"} <= main
    assert not main & mr
    production_tag = {"CI_COMMIT_TAG": f"{NAME}#production#3", "CI_COMMIT_BRANCH": None}
    assert listed(root, production_tag) == {"deploy-production", "rollback-production"}
    for tag in (f"{NAME}@v0.0.3", f"{NAME}#staging#4", f"{NAME}#reserved#4"):
        assert listed(root, {"CI_COMMIT_TAG": tag, "CI_COMMIT_BRANCH": None}) == set(), tag
    assert listed(root, {"CI_PIPELINE_SOURCE": "schedule"}) == {"monitor"}
    # a branch push: its merge request's pipeline is the one (no duplicate), none without one
    assert listed(root, {**PUSH, "CI_COMMIT_BRANCH": "feature"}) == set()


def test_the_git_token_reaches_git_only_through_the_credential_helper(
    tools, project: Path, tmp_path: Path
):
    root, _ = with_ci(project, tmp_path)
    secret = "glpat-git-push-secret"
    schedule = {"CI_PIPELINE_SOURCE": "schedule", "MLOPS_GIT_TOKEN": secret,
                "CI_PROJECT_URL": "https://gitlab.example.com/group/demo"}  # fmt: skip
    out = run_jobs(root, "monitor", variables=schedule)  # the placeholder monitor job works
    assert "production" in out and "nothing to deploy" in out
    assert secret not in out and secret not in state_files(root)
    push_url = git(root, "remote", "get-url", "--push", "origin")
    assert push_url == "https://gitlab.example.com/group/demo.git"
    assert secret not in (root / ".git" / "config").read_text()
    proc = subprocess.run(
        ["git", "credential", "fill"], cwd=root, capture_output=True, text=True,
        input="protocol=https\nhost=gitlab.example.com\n\n",
        env={**os.environ, "MLOPS_GIT_TOKEN": secret, "GIT_TERMINAL_PROMPT": "0"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "username=oauth2" in proc.stdout and f"password={secret}" in proc.stdout

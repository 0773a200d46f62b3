"""The GitLab loop driven BY EVENT: gitlab-ci-local runs whole pipelines of the project's own
`.gitlab-ci.yml` (the one `mlops init` wrote) and its `rules:` choose the jobs; no job is named
on the command line (that would bypass the rules).

merge request -> push to main (register, staging) -> push that merges a promotion
(deploy-production because `rules:changes` sees deploy/production.yaml) -> the production tag's
pipeline -> a schedule -> a README-only commit on a warm runner and on a cold one (empty DVC
cache and remote, outputs gone): both register nothing.

gitlab-ci-local evaluates `rules:changes` as a diff against `origin/<default branch>`, while
GitLab compares with the previous pipeline's commit: after each push, `refs/remotes/origin/main`
is set back to the commit before the push. `CI_COMMIT_TAG` only comes from `--variable`.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from mlops.deploy.target import Target
from tests.gitlab_stub import GitLabStub
from tests.helpers import commit_all, git, replace_in
from tests.registry_helpers import NAME, origin_for, refs
from tests.test_cicd_e2e import MR, PUSH, TOKEN, gcl, tools  # noqa: F401

pytestmark = [pytest.mark.slow, pytest.mark.e2e]


def pipeline(repo: Path, variables: dict[str, str | None]) -> str:
    """One whole pipeline for an event; the jobs its rules chose must pass."""
    proc = gcl(repo, variables=variables)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-5000:]
    return output


def ran(output: str) -> set[str]:
    lines = (line.strip() for line in output.splitlines())
    return {line.split()[1] for line in lines if line.startswith("PASS  ")}


def push_main(root: Path) -> None:
    """`git push origin main`, then origin/main back to the commit before the push: what
    gitlab-ci-local diffs `rules:changes` against (GitLab: the previous pipeline's commit)."""
    before = git(root, "rev-parse", "refs/remotes/origin/main")
    git(root, "push", "-q", "origin", "main")
    git(root, "update-ref", "refs/remotes/origin/main", before)


def registrations(origin: Path) -> list[str]:
    return sorted(r for r in refs(origin) if r.startswith(f"refs/tags/{NAME}@v"))


def test_pipelines_by_event(tools, trained: Path, tmp_path: Path, cli):  # noqa: F811
    root = trained
    origin = origin_for(root, tmp_path)
    stub = GitLabStub(token=TOKEN).start()
    try:
        # ---- a merge request's pipeline: check, run, the project's tests (`mlops init` scaffolds
        # tests/), report (no register, no deploy)
        git(root, "checkout", "-q", "-b", "feature")
        params = root / "params.yaml"
        replace_in(params, "C: 1.0", "C: 0.05")
        commit_all(root, "Regularise more")
        git(root, "push", "-q", "origin", "feature")
        out = pipeline(root, {**stub.env(project="42", mr="7"), **MR})
        assert ran(out) == {"check", "run", "test", "report"}, out[-3000:]
        assert [r.method for r in stub.requests] == ["GET", "POST"]
    finally:
        stub.stop()
    (root / "reports/merge-request.md").unlink()

    # ---- merged into main: register and deploy staging; production's pin did not change
    git(root, "checkout", "-q", "main")
    git(root, "merge", "-q", "--no-ff", "feature", "-m", "Merge branch 'feature'")
    push_main(root)
    out = pipeline(root, PUSH)
    assert ran(out) == {"register", "deploy-staging"}, out[-3000:]
    assert registrations(origin) == [f"refs/tags/{NAME}@v0.0.1"]
    assert Target(root / ".mlops/envs/staging").current_version() == "v0.0.1"

    # ---- a promotion merged: deploy-production runs because deploy/production.yaml changed
    git(root, "pull", "-q", "--ff-only", "origin", "main")
    result = cli(["promote", NAME, "v0.0.1", "--to", "production"], cwd=root)
    assert result.exit_code == 0, result.output
    git(root, "fetch", "-q", "origin", f"promote/{NAME}-production-v0.0.1")
    git(root, "merge", "-q", "--no-ff", "FETCH_HEAD", "-m", "Merge the promotion")
    push_main(root)
    out = pipeline(root, PUSH)
    assert ran(out) == {"register", "deploy-staging", "deploy-production"}, out[-3000:]
    assert "nothing to register" in out
    production = Target(root / ".mlops/envs/production")
    assert production.current_version() == "v0.0.1"
    [tag] = [r for r in refs(origin) if r.startswith(f"refs/tags/{NAME}#production#")]

    # ---- the production tag's pipeline: deploy-production (and the manual rollback, not run)
    git(root, "pull", "-q", "--ff-only", "origin", "main")
    tag_event = {"CI_COMMIT_TAG": tag.removeprefix("refs/tags/"), "CI_COMMIT_BRANCH": None}
    out = pipeline(root, tag_event)
    assert ran(out) == {"deploy-production"} and "production already runs" in out

    # ---- a schedule: the monitor only
    out = pipeline(root, {"CI_PIPELINE_SOURCE": "schedule"})
    assert ran(out) == {"monitor"}, out[-3000:]

    # ---- a README-only commit, warm runner: the same model, no new version
    git(root, "checkout", "-q", "main")
    git(root, "pull", "-q", "--ff-only", "origin", "main")
    (root / "README.md").write_text("# penguins\n\nA README change only.\n")
    commit_all(root, "README")
    push_main(root)
    out = pipeline(root, PUSH)
    assert ran(out) == {"register", "deploy-staging"}, out[-3000:]
    said = " ".join(out.split())
    assert "nothing to register" in said, out[-3000:]
    assert "v0.0.1 already holds this bundle" in said or "unchanged since v0.0.1" in said
    assert registrations(origin) == [f"refs/tags/{NAME}@v0.0.1"]

    # ---- the same on a cold runner: no DVC cache, no embedded remote, no outputs
    git(root, "pull", "-q", "--ff-only", "origin", "main")
    for rel in (".dvc/cache", ".mlops/remote", f"build/{NAME}", f"models/{NAME}", "data/split"):
        shutil.rmtree(root / rel)
    for rel in ("data/raw/penguins.csv", "reports/profile.json"):
        (root / rel).unlink()
    (root / "README.md").write_text("# penguins\n\nAnother README change.\n")
    commit_all(root, "README again")
    push_main(root)
    out = pipeline(root, PUSH)
    assert ran(out) == {"register", "deploy-staging"}, out[-3000:]
    # every stage recomputed from scratch; the rebuilt bundle is v0.0.1's, byte for byte
    said = " ".join(out.split())
    assert "✓ train ran" in said and "✓ evaluate ran" in said, out[-3000:]
    assert "nothing to register" in said, out[-3000:]
    assert "v0.0.1 already holds this bundle" in said or "unchanged since v0.0.1" in said
    assert registrations(origin) == [f"refs/tags/{NAME}@v0.0.1"]
    assert Target(root / ".mlops/envs/staging").current_version() == "v0.0.1"

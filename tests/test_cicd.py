"""The GitLab CI/CD files: valid against GitLab's schema, and the repository's `.gitlab-ci.yml` and
the one `mlops init` writes run the same jobs (the end-to-end test runs the repository's)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from tests.conftest import REPO_ROOT

ROOT_CI = REPO_ROOT / ".gitlab-ci.yml"
TEMPLATE_CI = REPO_ROOT / "mlops" / "templates" / "gitlab-ci.yml"


def test_both_files_pass_gitlabs_schema():
    tool = Path(sys.executable).parent / "check-jsonschema"
    proc = subprocess.run(
        [str(tool), "--builtin-schema", "vendor.gitlab-ci", str(ROOT_CI), str(TEMPLATE_CI)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "ok -- validation done" in proc.stdout


def test_the_repository_and_the_template_run_the_same_jobs():
    root = yaml.safe_load(ROOT_CI.read_text())
    template = yaml.safe_load(TEMPLATE_CI.read_text())
    # the documented differences: where mlops comes from, and which tests `test` runs
    assert root["variables"].pop("MLOPS_PIP_SPEC") == "-e ."
    assert root["variables"].pop("MLOPS_IMAGE_PIP_SPEC").endswith(".git@${CI_COMMIT_SHA}")
    assert template["variables"].pop("MLOPS_PIP_SPEC") == "__MLOPS_PIP_SPEC__"  # set by init
    assert root.pop("test")["script"] == ["bash scripts/test.sh"]
    assert "pytest" in " ".join(template.pop("test")["script"])
    assert root == template


def test_the_pipeline_shape():
    ci = yaml.safe_load(ROOT_CI.read_text())
    assert ci["variables"]["GIT_DEPTH"] == "0"
    rules = [r.get("if") for r in ci["workflow"]["rules"]]
    assert '$CI_PIPELINE_SOURCE == "merge_request_event"' in rules
    assert '$CI_PIPELINE_SOURCE == "schedule"' in rules
    assert "$CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH" in rules
    for job, tier in (("deploy-staging", "staging"), ("deploy-production", "production"),
                      ("rollback-production", "production")):  # fmt: skip
        assert ci[job]["environment"] == {"name": tier, "deployment_tier": tier}
        assert ci[job]["resource_group"] == tier
    assert ci["rollback-production"]["rules"][0]["when"] == "manual"
    assert ci["deploy-production"]["rules"][1]["changes"] == ["deploy/production.yaml"]
    assert ci["report"]["rules"][0]["when"] == "always"  # failed gates are reported too
    setup = "\n".join(ci["default"]["before_script"])
    assert "command -v mlops" in setup and "MLOPS_GIT_TOKEN" in setup
    shown = setup.replace('echo username=oauth2; echo "password=', "")
    assert "echo" not in shown.replace('echo "Set MLOPS_PIP_SPEC', "")  # no token is printed

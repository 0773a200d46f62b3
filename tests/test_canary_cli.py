"""The release commands' edges without a release in progress, and the template's scheduled job
that steps a rollout: its command line runs against the real CLI, and "nothing in progress"
(exit 5) is what the job's script turns into success."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import yaml

from tests.conftest import REPO_ROOT


def test_the_scheduled_job_steps_with_real_options(cli, project: Path):
    job = yaml.safe_load((REPO_ROOT / "mlops/templates/gitlab-ci.yml").read_text())["canary-step"]
    assert job["rules"] == [{"if": '$CI_PIPELINE_SOURCE == "schedule" && $MLOPS_CANARY_ENV'}]
    script = "\n".join(job["script"])
    line = next(x.strip() for x in script.splitlines() if x.strip().startswith("mlops canary"))
    args = shlex.split(line.split("||")[0].replace('"$MLOPS_CANARY_ENV"', "staging"))[1:]
    assert args == ["canary", "--env", "staging", "--act", "--push"]
    result = cli([*args, "--json"], cwd=project)
    assert result.exit_code == 5, result.output  # nothing in progress: the script says so, exit 0
    assert json.loads(result.output)["error"] == "GitStateError"
    assert '"$status" -eq 5' in script


def test_release_commands_refuse_bad_options(cli, project: Path):
    for args in (
        ["deploy", "--env", "staging", "--canary", "0"],
        ["deploy", "--env", "staging", "--canary", "100"],
        ["deploy", "--env", "staging", "--canary", "10", "--rollback"],
    ):
        result = cli([*args, "--json"], cwd=project)
        assert result.exit_code == 2, (args, result.output)
    for command in ("promote-canary", "abort-canary"):
        result = cli([command, "--env", "staging", "--json"], cwd=project)
        assert result.exit_code == 5, result.output
        assert "no canary or shadow release" in json.loads(result.output)["message"]
    result = cli(["deploy", "--env", "nowhere", "--canary", "10", "--json"], cwd=project)
    assert result.exit_code == 5 and "unknown environment" in result.output  # as `mlops deploy`

"""CI/CD variables that override an environment's `target:` (MLOPS_TARGET_<ENV>, MLOPS_TARGETS):
validated like pipeline.yaml's key, errors name the variable, never echo credentials."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlops.config.check import load_pipeline, load_project
from mlops.config.targets import container_note, env_var, override_for


def test_one_environment_or_a_prefix_for_all(project: Path, monkeypatch: pytest.MonkeyPatch):
    assert load_pipeline(project).environments["staging"].target == ".mlops/envs/staging"
    monkeypatch.setenv("MLOPS_TARGET_STAGING", "s3://bucket/own/staging")
    envs = load_project(project).pipeline.environments
    assert envs["staging"].target == "s3://bucket/own/staging"
    assert envs["production"].target == ".mlops/envs/production"  # not overridden
    assert envs["production"].pin == "deploy/production.yaml"  # the rest of the spec is kept
    monkeypatch.setenv("MLOPS_TARGETS", "s3://bucket/penguins/")
    envs = load_pipeline(project).environments
    assert envs["staging"].target == "s3://bucket/own/staging"  # its own variable wins
    assert envs["production"].target == "s3://bucket/penguins/production"
    monkeypatch.setenv("MLOPS_TARGET_STAGING", "  ")  # empty: unset
    assert load_pipeline(project).environments["staging"].target == "s3://bucket/penguins/staging"


def test_variable_names():
    assert env_var("staging") == "MLOPS_TARGET_STAGING"
    assert env_var("pre-prod.eu") == "MLOPS_TARGET_PRE_PROD_EU"
    assert override_for("x", {}) is None
    assert override_for("x", {"MLOPS_TARGETS": "/srv/t"}) == ("/srv/t/x", "MLOPS_TARGETS")


@pytest.mark.parametrize(
    ("value", "expected"),
    [("ftp://host/x", "ftp"), ("s3://user:hunter2@bucket/x", "credentials"),
     ("s3://bucket/../x", "..")],
)  # fmt: skip
def test_a_bad_override_is_exit_2_naming_the_variable(project, cli, monkeypatch, value, expected):
    monkeypatch.setenv("MLOPS_TARGET_STAGING", value)
    result = cli(["check"], cwd=project)
    assert result.exit_code == 2, result.output
    assert "MLOPS_TARGET_STAGING" in result.output
    assert "environments.staging.target" in result.output
    assert expected in result.output
    assert "hunter2" not in result.output


def test_a_container_job_deploying_to_a_directory_is_told():
    gitlab_pod = {"GITLAB_CI": "true", "KUBERNETES_SERVICE_HOST": "10.0.0.1"}
    note = container_note("staging", "/builds/p/.mlops/envs/staging", gitlab_pod)
    assert note is not None and "MLOPS_TARGETS" in note and "MLOPS_TARGET_STAGING" in note
    assert container_note("staging", "s3://bucket/staging", gitlab_pod) is None
    assert container_note("staging", "/srv/staging", {"KUBERNETES_SERVICE_HOST": "x"}) is None

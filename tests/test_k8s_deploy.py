"""`mlops deploy` to an environment with `kubernetes:`: the manifests of the deployed version are
rendered and committed (only them), so Argo CD or Flux rolls the pods out from git."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.helpers import commit_all, git
from tests.registry_helpers import NAME
from tests.test_deploy import _released_template, released  # noqa: F401 - fixtures

pytestmark = pytest.mark.slow


def test_deploy_renders_and_commits_the_manifests(released: Path, cli):  # noqa: F811
    path = released / "pipeline.yaml"
    data = yaml.safe_load(path.read_text())
    data["environments"]["staging"]["kubernetes"] = {
        "namespace": "ml",
        "image": "registry.example.com/team/mlops-serve:spec-0123456789ab",
        "target": "s3://models/staging",  # where the pods read (this deploy writes locally)
    }
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    commit_all(released, "Run staging on Kubernetes")
    before = git(released, "rev-parse", "HEAD")
    r = cli(["deploy", "--env", "staging", "--json"], cwd=released)
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert any("Kubernetes manifests in" in n and "deployment.yaml" in n for n in out["notes"])
    assert git(released, "rev-parse", "HEAD^") == before
    assert git(released, "log", "-1", "--format=%s") == f"deploy/k8s/staging: {NAME} v0.0.2"
    assert git(released, "status", "--porcelain", "--untracked-files=no") == ""
    dep = yaml.safe_load((released / "deploy/k8s/staging/deployment.yaml").read_text())
    pod = dep["spec"]["template"]
    assert pod["metadata"]["annotations"]["mlops.dev/version"] == "v0.0.2"
    assert pod["spec"]["containers"][0]["command"][2:4] == ["--target", "s3://models/staging"]
    again = cli(["deploy", "--env", "staging", "--json"], cwd=released)
    assert again.exit_code == 0, again.output
    assert any(n.endswith(": unchanged") for n in json.loads(again.output)["notes"])
    assert git(released, "log", "-1", "--format=%s") == f"deploy/k8s/staging: {NAME} v0.0.2"

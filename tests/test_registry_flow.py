"""Results into git and `mlops register` on real bundles (real DVC, real training), read back by
`gto` and `dvc artifacts get`; `mlops lineage` reproduces a version's model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mlops.errors import ExitCode
from tests.helpers import commit_all, git, replace_in
from tests.registry_helpers import NAME, gto_state, mlops_state, origin_for, refs

pytestmark = pytest.mark.slow
BUNDLE = f"models/{NAME}"


def dvc(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    bindir = str(Path(sys.executable).parent)
    env = dict(os.environ, PATH=bindir + os.pathsep + os.environ["PATH"])
    return subprocess.run(
        [sys.executable, "-m", "dvc", *args], cwd=cwd, capture_output=True, text=True, env=env
    )


def remote_has(root: Path, md5: str) -> bool:
    """The local DVC remote holds the object `md5` (a file, or a directory listing `.dir`)."""
    return (root / ".mlops/remote/files/md5" / md5[:2] / md5[2:]).is_file()


def lock_out(root: Path, path: str) -> str:
    import yaml

    lock = yaml.safe_load((root / "dvc.lock").read_text())
    for stage in lock["stages"].values():
        for out in stage.get("outs", []):
            if out["path"] == path:
                return out["md5"]
    raise AssertionError(path)


def test_run_commit_pushes_data_first_then_commits_the_results(trained: Path, cli):
    params = trained / "params.yaml"
    replace_in(params, "C: 1.0", "C: 0.3")
    (trained / "notes.txt").write_text("not the pipeline's\n")
    result = cli(["run", "--commit", "--json"], cwd=trained)
    assert result.exit_code == 0, result.output
    done = json.loads(result.output)["commit"]
    assert done["commit"] == git(trained, "rev-parse", "HEAD")
    assert {"dvc.lock", "params.yaml", "reports/metrics.json"} <= set(done["files"])
    assert done["left_out"] == ["notes.txt"]
    assert done["files_pushed"] > 0
    assert remote_has(trained, lock_out(trained, BUNDLE))  # the bundle is on the DVC remote
    assert remote_has(trained, lock_out(trained, "data/raw/penguins.csv"))
    message = git(trained, "log", "-1", "--format=%B")
    assert message.startswith(f"Run results of {NAME}: accuracy=")
    assert "Params changed: train.C: 1.0 -> 0.3" in message
    assert f"Mlops-Run: {done['run_id']}" in message
    assert git(trained, "status", "--porcelain") == "?? notes.txt"
    # nothing new: nothing to commit, not an error
    again = cli(["commit"], cwd=trained)
    assert again.exit_code == 0 and "nothing to commit" in again.output
    # a change not yet run is refused: the lock would not describe the work tree
    replace_in(params, "C: 0.3", "C: 0.5")
    refused = cli(["commit"], cwd=trained)
    assert refused.exit_code == ExitCode.GIT_STATE
    assert "mlops run" in refused.output
    assert git(trained, "log", "-1", "--format=%H") == done["commit"]
    # a DVC remote that cannot take the data: nothing is committed
    git(trained, "checkout", "-q", "params.yaml")
    (trained / "reports/extra.txt").write_text("x\n")
    subprocess.run(["rm", "-rf", str(trained / ".mlops/remote")], check=True)
    (trained / ".mlops/remote").write_text("not a directory\n")
    failed = cli(["commit"], cwd=trained)
    assert failed.exit_code == ExitCode.GIT_STATE, failed.output
    assert "could not push" in failed.output and "nothing was committed" in failed.output
    assert git(trained, "log", "-1", "--format=%H") == done["commit"]


def test_register_promote_read_by_gto_and_dvc_artifacts(trained: Path, tmp_path: Path, cli):
    result = cli(["register", "--json"], cwd=trained)
    assert result.exit_code == 0, result.output
    reg = json.loads(result.output)
    assert (reg["version"], reg["tag"], reg["blessed"]) == ("v0.0.1", f"{NAME}@v0.0.1", True)
    message = git(trained, "tag", "-l", "--format=%(contents)", reg["tag"])
    assert message.startswith(f"Registering artifact {NAME} version v0.0.1")
    assert "blessed: true" in message and "metrics: accuracy=" in message
    assert remote_has(trained, lock_out(trained, BUNDLE))  # pushed before tagging
    result = cli(["promote", NAME, "v0.0.1", "--to", "staging"], cwd=trained)
    assert result.exit_code == 0, result.output
    assert mlops_state(cli, trained) == gto_state(trained)
    assert gto_state(trained)[NAME] == {
        "version": "v0.0.1",
        "stage": {"staging": "v0.0.1"},
        "registered": True,
        "active": True,
    }
    out = tmp_path / "fetched"
    got = dvc(trained, "artifacts", "get", ".", NAME, "--stage", "staging", "-o", str(out))
    assert got.returncode == 0, got.stderr + got.stdout
    fetched = json.loads((out / "metadata.json").read_text())
    assert fetched == json.loads((trained / BUNDLE / "metadata.json").read_text())
    # pushing: the version and its stage reach `origin`
    origin = origin_for(trained, tmp_path)
    result = cli(["register", "--push"], cwd=trained)  # same commit: refused, nothing pushed
    assert result.exit_code == ExitCode.GIT_STATE
    assert "already registered as penguins-classifier v0.0.1" in result.output
    result = cli(["promote", NAME, "v0.0.1", "--to", "production"], cwd=trained)
    assert result.exit_code == 0, result.output
    assert f"refs/tags/{NAME}@v0.0.1" in refs(origin)


def test_register_refusals(trained: Path, cli):
    first = git(trained, "rev-list", "--max-parents=0", "HEAD")  # before any run: no dvc.lock
    before = refs(trained)
    cases = [
        (["register", "other-model"], "unknown model 'other-model'"),
        (["register", "--ref", first], "is not committed at"),
        (["register", "--version", "1.0"], "is not a version"),
        (["register", "--push"], "no git remote 'origin'"),
    ]
    for args, expect in cases:
        result = cli(args, cwd=trained)
        assert result.exit_code in (ExitCode.GIT_STATE, ExitCode.USAGE), (args, result.output)
        assert expect in " ".join(result.output.split()), (args, result.output)
        assert "hint:" in result.output
    (trained / "params.yaml").write_text((trained / "params.yaml").read_text() + "\n")
    result = cli(["register"], cwd=trained)
    assert result.exit_code == ExitCode.GIT_STATE
    assert "uncommitted changes (params.yaml)" in result.output
    assert refs(trained) == before  # nothing was tagged
    git(trained, "checkout", "-q", "params.yaml")
    assert cli(["register", "--version", "v1.0.0"], cwd=trained).exit_code == 0
    git(trained, "commit", "-q", "--allow-empty", "-m", "same bundle, new commit")
    result = cli(["register", "--version", "v1.0.0"], cwd=trained)
    assert result.exit_code == ExitCode.GIT_STATE
    assert "v1.0.0 already exists" in result.output and "v1.0.1" in result.output
    # the same model on a new commit is no new version: "unchanged since", exit 0, no tag
    tags = refs(trained)
    result = cli(["register", "--json"], cwd=trained)
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["unchanged_since"] == "v1.0.0"
    assert refs(trained) == tags
    # a gate moved: evaluate reruns, the verdict changes, but the model is the same one
    pipe = trained / "pipeline.yaml"
    replace_in(pipe, "accuracy: {min: 0.9}", "accuracy: {min: 0.999}")
    assert cli(["run"], cwd=trained).exit_code == ExitCode.GATE_FAILED
    assert cli(["commit"], cwd=trained).exit_code == 0
    result = cli(["register"], cwd=trained)
    assert result.exit_code == 0, result.output
    assert "unchanged since v1.0.0" in " ".join(result.output.split())
    assert refs(trained) == tags
    # a new model that failed its gates: refused with the reason, unless forced
    params = trained / "params.yaml"
    replace_in(params, "C: 1.0", "C: 0.5")
    assert cli(["run"], cwd=trained).exit_code == ExitCode.GATE_FAILED
    assert cli(["commit"], cwd=trained).exit_code == 0
    result = cli(["register"], cwd=trained)
    assert result.exit_code == ExitCode.GATE_FAILED
    assert "not blessed" in result.output and "accuracy min 0.999" in result.output
    result = cli(["register", "--force", "--bump", "minor", "--json"], cwd=trained)
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["version"] == "v1.1.0"
    shown = json.loads(cli(["registry", "show", "--json"], cwd=trained).output)[NAME]
    assert (shown["version"], shown["latest_blessed"]) == ("v1.1.0", "v1.0.0")


def test_lineage_reproduces_the_registered_model(trained: Path, cli):
    assert cli(["register"], cwd=trained).exit_code == 0
    assert cli(["promote", NAME, "v0.0.1", "--to", "staging"], cwd=trained).exit_code == 0
    result = cli(["lineage", f"{NAME}@v0.0.1", "--json"], cwd=trained)
    assert result.exit_code == 0, result.output
    lin = json.loads(result.output)
    assert lin["commit"] == git(trained, "rev-parse", "HEAD")
    assert lin["blessed"] is True and all(g["passed"] for g in lin["gates"])
    assert lin["params"]["train"]["C"] == 1.0
    # every param, the estimator's class too (the bundle keeps it beside the hyper-parameters)
    assert lin["params"]["train"]["estimator"] == "sklearn.linear_model.LogisticRegression"
    assert len(lin["identity"]) == 64
    assert lin["hashes"]["data/raw/penguins.csv"] == lock_out(trained, "data/raw/penguins.csv")
    assert lin["validation"]["valid"] is True
    assert [(s["event"], s["stage"]) for s in lin["stages"]] == [("assignment", "staging")]
    assert lin["deployments"] == []
    text = cli(["lineage", f"{NAME}@v0.0.1"], cwd=trained).output
    assert f"reproduce: mlops reproduce {NAME}@v0.0.1" in text and "quality gates" in text
    # the project moves on; then go back to the version's commit and rebuild from scratch
    (trained / "NOTES.md").write_text("later work\n")
    commit_all(trained, "Later work")
    git(trained, "checkout", "-q", lin["commit"])
    for out in (BUNDLE, "build", "data/split", "data/raw/penguins.csv"):
        subprocess.run(["rm", "-rf", str(trained / out)], check=True)
    result = cli(["run", "--force"], cwd=trained)
    assert result.exit_code == 0, result.output
    rebuilt = json.loads((trained / BUNDLE / "metadata.json").read_text())
    assert rebuilt["data"] == lin["data"]
    assert rebuilt["metrics"] == lin["metrics"]
    assert {**rebuilt["params"], "train": {"estimator": rebuilt["estimator"],
            **rebuilt["params"]["train"]}} == lin["params"]  # fmt: skip
    # byte for byte: the rebuilt bundle has the registered bundle's hash
    assert lock_out(trained, BUNDLE) == lin["bundle"]["md5"]
    assert lock_out(trained, "data/raw/penguins.csv") == lin["hashes"]["data/raw/penguins.csv"]

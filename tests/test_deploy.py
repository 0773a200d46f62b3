"""`mlops deploy` and `mlops envs` on real registered versions (real DVC, real training, real git):
fetch at the tag, verification, smoke test, atomic switch, records, refusals, and SIGKILL at every
step followed by the repair of the next deploy."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from mlops import api
from mlops.bundle import read_metadata, write_bundle
from mlops.deploy.faults import FAULT_ENV
from mlops.deploy.target import Target
from mlops.errors import ExitCode
from tests.helpers import commit_all, git, replace_in
from tests.registry_helpers import NAME, origin_for, refs

pytestmark = pytest.mark.slow
BUNDLE = f"models/{NAME}"
STEPS = ["resolve", "fetch", "verify", "install", "smoke", "switch", "record"]
LEFTOVER_PREFIXES = (".tmp-", ".old-", ".fetch-", ".current.tmp-", ".deploy-journal")


def python_env() -> dict[str, str]:
    bindir = str(Path(sys.executable).parent)
    return dict(os.environ, PATH=bindir + os.pathsep + os.environ["PATH"])


def dvc(cwd: Path, *args: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "dvc", *args], cwd=cwd, capture_output=True, text=True,
        env=python_env(),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr + proc.stdout


@pytest.fixture(scope="session")
def _released_template(tmp_path_factory: pytest.TempPathFactory, _trained_template: Path):
    """Two registered versions with different models: v0.0.1 (C=1.0) and v0.0.2 (C=0.3)."""
    root = tmp_path_factory.mktemp("released") / "project"
    shutil.copytree(_trained_template, root, symlinks=True)
    metas = {}
    assert api.register(root).version == "v0.0.1"
    metas["v0.0.1"] = read_metadata(root / BUNDLE)
    params = root / "params.yaml"
    replace_in(params, "C: 1.0", "C: 0.3")
    result = api.run(root)
    assert result.error is None, result.error
    api.commit(root)
    assert api.register(root).version == "v0.0.2"
    metas["v0.0.2"] = read_metadata(root / BUNDLE)
    assert metas["v0.0.1"]["files"] != metas["v0.0.2"]["files"]  # two different models
    (root.parent / "metadata.json").write_text(json.dumps(metas))
    return root


@pytest.fixture
def released(tmp_path: Path, _released_template: Path) -> Path:
    dest = tmp_path / "released"
    shutil.copytree(_released_template, dest, symlinks=True)
    return dest


def registered_metadata(released_template: Path, version: str) -> dict:
    return json.loads((released_template.parent / "metadata.json").read_text())[version]


def deploy(cli, root: Path, *args: str):
    result = cli(["deploy", *args, "--json"], cwd=root)
    data = json.loads(result.output) if result.output.strip().startswith("{") else None
    return result, data


def target(root: Path, env: str = "staging") -> Target:
    return Target(root / ".mlops" / "envs" / env)


def leftovers(t: Target) -> list[str]:
    found = [p.name for p in t.root.iterdir() if p.name.startswith(LEFTOVER_PREFIXES)]
    found += [p.name for p in t.versions_dir.iterdir() if p.name.startswith(LEFTOVER_PREFIXES)]
    return found


def stage_tags(root: Path, env: str) -> list[str]:
    return git(root, "tag", "-l", f"{NAME}#{env}#*").splitlines()


def test_deploy_tracks_the_latest_version_records_it_and_is_then_a_noop(
    released: Path, _released_template: Path, cli
):
    result, out = deploy(cli, released, "--env", "staging")
    assert result.exit_code == 0, result.output
    assert (out["version"], out["action"], out["previous"]) == ("v0.0.2", "deployed", None)
    assert out["source"] == "latest blessed version"
    assert [s["step"] for s in out["steps"]] == STEPS and all(s["ok"] for s in out["steps"])
    assert out["smoke"]["rows"] > 0 and out["smoke"]["classes"] == ["Adelie", "Chinstrap", "Gentoo"]
    assert "no git remote 'origin'" in " ".join(out["notes"])
    t = target(released)
    assert os.readlink(t.current_link) == "versions/v0.0.2"
    bundle = t.load()  # every sha256 checked again
    assert bundle.metadata == registered_metadata(_released_template, "v0.0.2")
    deployment = t.deployment()
    assert deployment["commit"] == git(released, "rev-parse", f"{NAME}@v0.0.2^{{commit}}")
    assert (deployment["env"], deployment["registration_tag"]) == ("staging", f"{NAME}@v0.0.2")
    assert stage_tags(released, "staging") == [out["stage_tag"]]
    message = git(released, "tag", "-l", "--format=%(contents)", out["stage_tag"])
    assert message.startswith(f"Assigning stage staging to artifact {NAME} version v0.0.2")
    [event] = t.history()
    assert (event["event"], event["version"]) == ("deploy", "v0.0.2")
    assert event["tag"] == out["stage_tag"]
    assert leftovers(t) == []

    again, out2 = deploy(cli, released, "--env", "staging")
    assert again.exit_code == 0, again.output
    assert (out2["action"], out2["stage_tag"], out2["tag_pushed"]) == (
        "unchanged", out["stage_tag"], None,
    )  # fmt: skip
    assert len(t.history()) == 1 and stage_tags(released, "staging") == [out["stage_tag"]]

    envs = {e["env"]: e for e in json.loads(cli(["envs", "--json"], cwd=released).output)}
    assert envs["staging"]["live"] == envs["staging"]["desired"] == "v0.0.2"
    assert envs["staging"]["state"] == "up to date" and envs["staging"]["since"] == event["ts"]
    assert envs["production"]["live"] is None
    assert envs["production"]["state"] == "nothing to deploy"  # no pin file yet
    table = cli(["envs"], cwd=released).output
    assert "staging" in table and "up to date" in table

    lin = json.loads(cli(["lineage", f"{NAME}@v0.0.2", "--json"], cwd=released).output)
    assert [(d["env"], d["live"], d["tag"]) for d in lin["deployments"]] == [
        ("staging", True, out["stage_tag"])
    ]


def pin(root: Path, version: str) -> None:
    (root / "deploy").mkdir(exist_ok=True)
    (root / "deploy/production.yaml").write_text(f"model: {NAME}\nversion: {version}\n")
    commit_all(root, f"Pin production to {version}")


def test_pinned_production_rollback_and_stage_tags(released: Path, cli):
    result = cli(["deploy", "--env", "production"], cwd=released)
    assert result.exit_code == ExitCode.GIT_STATE
    assert "nothing to deploy to production" in result.output and "mlops promote" in result.output
    pin(released, "v0.0.1")
    result, out = deploy(cli, released, "--env", "production")
    assert result.exit_code == 0, result.output
    assert (out["version"], out["source"]) == ("v0.0.1", "deploy/production.yaml")
    pin(released, "v0.0.2")
    result, out = deploy(cli, released, "--env", "production")
    assert result.exit_code == 0, result.output
    assert (out["version"], out["previous"]) == ("v0.0.2", "v0.0.1")
    t = target(released, "production")
    assert t.versions() == ["v0.0.1", "v0.0.2"]
    first, second = stage_tags(released, "production")

    result, out = deploy(cli, released, "--env", "production", "--rollback")
    assert result.exit_code == 0, result.output
    assert (out["version"], out["rollback_from"]) == ("v0.0.1", "v0.0.2")
    assert "deploy/production.yaml pins v0.0.2" in " ".join(out["notes"])
    assert os.readlink(t.current_link) == "versions/v0.0.1"
    message = git(released, "tag", "-l", "--format=%(contents)", out["stage_tag"])
    assert "rollback-from: v0.0.2" in message
    assert [e["event"] for e in t.history()] == ["deploy", "deploy", "rollback"]
    shown = json.loads(cli(["registry", "show", "--json"], cwd=released).output)[NAME]
    assert shown["stage"]["production"] == "v0.0.1"

    # a pushed stage tag: deploys what it assigns, unless a later tag moved the stage on
    result, out = deploy(cli, released, "--env", "production", "--from-tag", out["stage_tag"])
    assert result.exit_code == 0 and out["action"] == "unchanged", result.output
    result = cli(["deploy", "--env", "production", "--from-tag", second], cwd=released)
    assert result.exit_code == ExitCode.GIT_STATE
    assert "no longer production's latest assignment" in " ".join(result.output.split())
    result = cli(["deploy", "--env", "staging", "--from-tag", first], cwd=released)
    assert result.exit_code == ExitCode.USAGE and "assigns stage 'production'" in result.output
    result = cli(["deploy", "--env", "production", "--version", "v9.9.9"], cwd=released)
    assert result.exit_code == ExitCode.GIT_STATE and "not registered" in result.output


def test_the_stage_tag_is_pushed_when_the_remote_takes_it(released: Path, tmp_path: Path, cli):
    origin = origin_for(released, tmp_path)
    result, out = deploy(cli, released, "--env", "staging")
    assert result.exit_code == 0, result.output
    assert out["tag_pushed"] is True and out["notes"] == []
    on_origin = refs(origin)
    assert f"refs/tags/{out['stage_tag']}" in on_origin
    assert f"refs/tags/{NAME}@v0.0.2" in on_origin  # the version it names goes along
    # a remote that refuses: deployed all the same, the tag stays local and the output says so
    hook = origin / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'tags are frozen' >&2\nexit 1\n")
    result, out = deploy(cli, released, "--env", "production", "--version", "v0.0.1")
    assert result.exit_code == 0, result.output
    assert out["action"] == "deployed" and out["tag_pushed"] is False
    notes = " ".join(out["notes"])
    assert "could not be pushed" in notes and f"git push origin '{out['stage_tag']}'" in notes
    assert out["stage_tag"] in stage_tags(released, "production")
    assert f"refs/tags/{out['stage_tag']}" not in refs(origin)


def _dvc_object(root: Path, md5: str) -> list[Path]:
    rel = Path("files/md5") / md5[:2] / md5[2:]
    return [p for p in (root / ".dvc/cache" / rel, root / ".mlops/remote" / rel) if p.exists()]


def test_a_bundle_altered_after_registration_is_refused(released: Path, cli):
    result, _ = deploy(cli, released, "--env", "production", "--version", "v0.0.1")
    assert result.exit_code == 0, result.output
    # someone swaps the registered model file of v0.0.2 in the DVC cache and on the remote
    import hashlib

    model = (released / BUNDLE / "model.skops").read_bytes()  # the work tree holds v0.0.2
    objects = _dvc_object(released, hashlib.md5(model).hexdigest())
    assert len(objects) == 2
    for obj in objects:
        obj.chmod(0o644)
        obj.write_bytes(model + b"tampered")
    t = target(released, "production")
    before = t.history()
    result, out = deploy(cli, released, "--env", "production", "--version", "v0.0.2")
    assert result.exit_code == ExitCode.DEPLOY_FAILED, result.output
    assert out["details"]["step"] == "verify"
    assert "model.skops" in out["message"] and "v0.0.1 is still live" in out["message"]
    assert os.readlink(t.current_link) == "versions/v0.0.1"  # production untouched
    assert t.versions() == ["v0.0.1"] and leftovers(t) == []
    t.load()
    failed = t.history()[len(before) :]
    assert [(e["event"], e["step"]) for e in failed] == [("deploy-failed", "verify")]
    assert stage_tags(released, "production") == [f"{NAME}#production#1"]


def test_unblessed_refused_unless_forced_and_a_failed_smoke_test_keeps_the_live_version(
    released: Path, cli
):
    result, _ = deploy(cli, released, "--env", "staging")
    assert result.exit_code == 0, result.output
    # v0.0.3: a bundle whose schema lost a feature the model needs, and that failed its gates
    meta = read_metadata(released / BUNDLE)
    files = {n: (released / BUNDLE / n).read_bytes() for n in meta["files"]}
    schema = json.loads(files["schema.json"])
    schema["features"] = [f for f in schema["features"] if f["name"] != "bill_length_mm"]
    files["schema.json"] = json.dumps(schema).encode()
    meta = {k: v for k, v in meta.items() if k not in ("files", "format")}
    meta["verdict"] = {"blessed": False, "gates": [
        {"metric": "accuracy", "rule": "min", "threshold": 0.999, "value": 0.97, "passed": False}
    ]}  # fmt: skip
    write_bundle(released / BUNDLE, files, meta)
    dvc(released, "commit", "-f", "evaluate")
    assert cli(["commit"], cwd=released).exit_code == 0
    result = cli(["register", "--force"], cwd=released)
    assert result.exit_code == 0, result.output

    t = target(released)
    result = cli(["deploy", "--env", "staging", "--version", "v0.0.3"], cwd=released)
    assert result.exit_code == ExitCode.GATE_FAILED, result.output
    text = " ".join(result.output.split())
    assert "not blessed" in text and "accuracy min 0.999" in text and "--force" in text
    assert t.versions() == ["v0.0.2"] and len(t.history()) == 1

    result, out = deploy(cli, released, "--env", "staging", "--version", "v0.0.3", "--force")
    assert result.exit_code == ExitCode.DEPLOY_FAILED, result.output
    assert out["details"]["step"] == "smoke"
    assert out["details"]["result"]["action"] == "failed"
    assert "bill_length_mm" in out["message"] and "v0.0.2 is still live" in out["message"]
    assert os.readlink(t.current_link) == "versions/v0.0.2"
    assert t.versions() == ["v0.0.2"] and leftovers(t) == []
    assert t.history()[-1]["event"] == "deploy-failed" and t.history()[-1]["step"] == "smoke"
    assert len(stage_tags(released, "staging")) == 1
    # the desired version of a tracking environment skips the unblessed one
    result, out = deploy(cli, released, "--env", "staging")
    assert result.exit_code == 0 and (out["version"], out["action"]) == ("v0.0.2", "unchanged")


@pytest.fixture(scope="session")
def _staged_template(tmp_path_factory: pytest.TempPathFactory, _released_template: Path):
    """The released project with staging running v0.0.1."""
    root = tmp_path_factory.mktemp("staged") / "project"
    shutil.copytree(_released_template, root, symlinks=True)
    assert api.deploy(root, "staging", version="v0.0.1").version == "v0.0.1"
    return root


BEFORE_SWITCH = ["fetched", "install-copied", "switch-linked"]
AFTER_SWITCH = ["switched", "tagged", "recorded"]


@pytest.mark.parametrize("step", BEFORE_SWITCH + AFTER_SWITCH)
def test_a_deploy_killed_at_any_step_leaves_a_complete_version_live_and_is_repaired(
    step: str, tmp_path: Path, _staged_template: Path, _released_template: Path, cli
):
    root = tmp_path / "staged"
    shutil.copytree(_staged_template, root, symlinks=True)
    env = {**python_env(), FAULT_ENV: f"kill@{step}"}
    proc = subprocess.run(
        [sys.executable, "-m", "mlops", "deploy", "--env", "staging", "--version", "v0.0.2"],
        cwd=root, env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    t = target(root)
    live = t.current_version()
    assert live == ("v0.0.1" if step in BEFORE_SWITCH else "v0.0.2")
    assert t.load().metadata == registered_metadata(_released_template, live)  # complete
    assert ".deploy-journal.json" in leftovers(t)

    result, out = deploy(cli, root, "--env", "staging", "--version", "v0.0.2")
    assert result.exit_code == 0, result.output
    assert out["repaired"] and leftovers(t) == []
    assert os.readlink(t.current_link) == "versions/v0.0.2"
    assert t.load().metadata == registered_metadata(_released_template, "v0.0.2")
    events = [(e["event"], e["version"]) for e in t.history()]
    if step in BEFORE_SWITCH:
        assert out["action"] == "deployed"
        assert events == [("deploy", "v0.0.1"), ("deploy-interrupted", "v0.0.2"),
                          ("deploy", "v0.0.2")]  # fmt: skip
    else:
        assert out["action"] == "unchanged"  # it went live before the kill: recorded once
        assert events == [("deploy", "v0.0.1"), ("deploy", "v0.0.2")]
        assert t.history()[-1].get("recovered") is (True if step != "recorded" else None)
    tags = stage_tags(root, "staging")
    assert len(tags) == 2  # one assignment per version that went live
    shown = json.loads(cli(["registry", "show", "--json"], cwd=root).output)[NAME]
    assert shown["stage"]["staging"] == "v0.0.2"


def test_register_skip_registered_for_ci_on_every_push(released: Path, cli):
    result = cli(["register", "--skip-registered", "--json"], cwd=released)
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["skipped"] == f"{NAME} v0.0.2 already holds this bundle"
    pin(released, "v0.0.2")  # a merged promotion: a new commit, the same bundle
    result = cli(["register", "--skip-registered"], cwd=released)
    assert result.exit_code == 0, result.output
    assert "nothing to register" in result.output and "registered at" in result.output
    assert git(released, "tag", "--points-at", "HEAD") == ""
    # without the flag too: the same model is no new version (issue 14: identity)
    result = cli(["register", "--json"], cwd=released)
    assert result.exit_code == 0 and json.loads(result.output)["unchanged_since"] == "v0.0.2"
    assert git(released, "tag", "--points-at", "HEAD") == ""


def test_a_version_a_killed_deploy_installed_is_removed_by_the_next_deploy(
    tmp_path: Path, _staged_template: Path, cli
):
    """Killed after installing v0.0.2 (before its smoke test and switch); the next deploy is of
    another version: v0.0.2 never went live, so the repair removes it."""
    root = tmp_path / "staged"
    shutil.copytree(_staged_template, root, symlinks=True)
    env = {**python_env(), FAULT_ENV: "kill@installed"}
    proc = subprocess.run(
        [sys.executable, "-m", "mlops", "deploy", "--env", "staging", "--version", "v0.0.2"],
        cwd=root, env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    t = target(root)
    assert t.current_version() == "v0.0.1" and "v0.0.2" in t.versions()
    result, out = deploy(cli, root, "--env", "staging", "--version", "v0.0.1")
    assert result.exit_code == 0, result.output
    assert out["action"] == "unchanged"
    assert "removed versions/v0.0.2, which never went live" in out["repaired"]
    assert t.versions() == ["v0.0.1"] and leftovers(t) == []

"""Deployment targets: verified versions side by side, `current` switched atomically."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from mlops.bundle import BundleError, write_bundle
from mlops.deploy.target import NotDeployedError, is_target, open_target
from mlops.errors import DeployError, ExitCode, UsageError


def bundle(tmp_path: Path, name: str = "b", label: str = "one") -> Path:
    import skops.io as sio
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression().fit([[0.0], [1.0], [2.0], [3.0]], [0, 0, 1, 1])
    dest = tmp_path / name
    files = {"model.skops": sio.dumps(model), "schema.json": json.dumps({"label": label}).encode()}
    write_bundle(dest, files, {"name": "m", "git": {"commit": "c" * 40}})
    return dest


def leftovers(target) -> list[str]:
    hidden = [p.name for p in target.versions_dir.iterdir() if p.name.startswith(".")]
    hidden += [p.name for p in target.root.iterdir() if p.name.startswith(".current")]
    return hidden


def test_install_switch_and_read_back(tmp_path: Path):
    target = open_target(tmp_path / "env", create=True)
    assert is_target(target.root)
    assert target.current_dir() is None and target.current_version() is None
    with pytest.raises(NotDeployedError) as info:
        target.require_current()
    assert info.value.exit_code == ExitCode.GIT_STATE and "mlops deploy" in info.value.hint

    path = target.install(bundle(tmp_path), "v1.0.0", commit="abc")
    assert path == target.root / "versions" / "v1.0.0"
    record = json.loads((path / "deployment.json").read_text())
    assert record["name"] == "m" and record["version"] == "v1.0.0" and record["commit"] == "abc"
    assert record["deployed_at"].endswith("+00:00")
    assert target.versions() == ["v1.0.0"]
    assert target.current_version() is None  # installing does not switch

    assert target.switch("v1.0.0") is None
    assert os.readlink(target.current_link) == "versions/v1.0.0"  # relative: the dir can move
    assert target.current_version() == "v1.0.0"
    assert target.deployment()["version"] == "v1.0.0"
    loaded = target.load()
    assert loaded.metadata["name"] == "m" and list(loaded.model.predict([[3.0]])) == [1]

    target.install(bundle(tmp_path, "b2", label="two"), "v1.1.0")
    assert target.switch("v1.1.0") == "v1.0.0"
    assert target.current_version() == "v1.1.0"
    assert target.versions() == ["v1.0.0", "v1.1.0"]
    assert leftovers(target) == []


def test_a_bundle_failing_verification_is_not_installed(tmp_path: Path):
    target = open_target(tmp_path / "env", create=True)
    src = bundle(tmp_path)
    (src / "schema.json").write_text('{"label": "tampered"}')
    with pytest.raises(BundleError) as info:
        target.install(src, "v1.0.0")
    assert info.value.exit_code == ExitCode.DEPLOY_FAILED
    assert target.versions() == [] and leftovers(target) == []
    assert not (target.versions_dir / "v1.0.0").exists()


def test_tampering_after_install_is_caught_on_load(tmp_path: Path):
    target = open_target(tmp_path / "env", create=True)
    target.install(bundle(tmp_path), "v1")
    target.switch("v1")
    (target.versions_dir / "v1" / "schema.json").write_text("{}")
    with pytest.raises(BundleError, match="failed verification"):
        target.load()


def test_reinstall_is_idempotent_and_a_deployed_version_never_changes(tmp_path: Path):
    target = open_target(tmp_path / "env", create=True)
    src = bundle(tmp_path)
    first = target.install(src, "v1")
    stamp = (first / "deployment.json").read_text()
    assert target.install(src, "v1") == first
    assert (first / "deployment.json").read_text() == stamp  # untouched
    target.switch("v1")
    with pytest.raises(DeployError, match="different content"):
        target.install(bundle(tmp_path, "other", label="two"), "v1")
    # a version that is not current may be replaced (e.g. a failed earlier attempt)
    target.install(src, "v2")
    target.install(bundle(tmp_path, "other2", label="three"), "v2")
    assert json.loads((target.versions_dir / "v2" / "schema.json").read_text())["label"] == "three"
    assert leftovers(target) == []


def test_an_altered_live_copy_is_repaired_in_one_exchange_under_its_record(tmp_path: Path):
    """Installing the live version again over a copy altered on disk repairs it (it used to be
    refused as 'different content'): a verified copy with the same deployment.json replaces the
    damaged one in one rename, as a new directory (what makes followers load it again)."""
    target = open_target(tmp_path / "env", create=True)
    src = bundle(tmp_path)
    live = target.install(src, "v1")
    target.switch("v1")
    record = (live / "deployment.json").read_bytes()
    inode = os.stat(live).st_ino
    (live / "schema.json").write_text('{"label": "altered"}')
    assert not target.complete("v1")
    assert target.install(src, "v1") == live
    assert target.complete("v1") and target.load().metadata["name"] == "m"
    assert (live / "deployment.json").read_bytes() == record  # the same deployment record
    assert os.stat(live).st_ino != inode
    assert os.readlink(target.current_link) == "versions/v1" and leftovers(target) == []
    # other content under the live version's name is still refused
    with pytest.raises(DeployError, match="different content"):
        target.install(bundle(tmp_path, "other", label="two"), "v1")


def test_switch_to_a_version_that_is_not_installed_is_refused(tmp_path: Path):
    target = open_target(tmp_path / "env", create=True)
    with pytest.raises(DeployError, match="not installed"):
        target.switch("v9")
    assert target.current_link_text() is None


@pytest.mark.parametrize("bad", ["../x", "", "a/b", ".hidden", "v1..2", "x" * 200])
def test_version_names_must_be_plain_directory_names(tmp_path: Path, bad: str):
    target = open_target(tmp_path / "env", create=True)
    with pytest.raises(UsageError):
        target.install(bundle(tmp_path), bad)


def test_history_is_appended_one_json_object_per_line(tmp_path: Path):
    target = open_target(tmp_path / "env", create=True)
    target.append_history({"event": "deploy", "version": "v1"})
    target.append_history({"event": "rollback", "version": "v0", "ts": "fixed"})
    with open(target.history_file, "a") as fh:
        fh.write("not json\n")
    events = target.history()
    assert [e["event"] for e in events] == ["deploy", "rollback"]
    assert events[0]["ts"].endswith("+00:00") and events[1]["ts"] == "fixed"


def test_open_target_that_does_not_exist(tmp_path: Path):
    with pytest.raises(NotDeployedError, match="does not exist"):
        open_target(tmp_path / "nope")
    assert not is_target(tmp_path)

"""An installed version is verified against the hashes git recorded (dvc.lock at the version's
registration tag), never only against the files beside it; `current` outside `versions/` is
refused; target URLs are checked by `mlops check`. Real git, DVC, scikit-learn."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytest

from mlops import api
from mlops.deploy.integrity import dvc_dir_md5, recorded_md5, tree_hashes
from mlops.deploy.target import Target
from mlops.errors import ExitCode
from tests.helpers import git, replace_in
from tests.registry_helpers import NAME
from tests.test_deploy import _released_template  # noqa: F401  (a fixture)

pytestmark = pytest.mark.slow
BUNDLE = f"models/{NAME}"


@pytest.fixture
def deployed(tmp_path: Path, _released_template: Path) -> Path:  # noqa: F811
    """v0.0.1 and then v0.0.2 deployed to the local staging target."""
    root = tmp_path / "released"
    shutil.copytree(_released_template, root, symlinks=True)
    assert api.deploy(root, "staging", version="v0.0.1").action == "deployed"
    assert api.deploy(root, "staging", version="v0.0.2").action == "deployed"
    return root


def staging(root: Path) -> Target:
    return Target(root / ".mlops" / "envs" / "staging")


def envs_json(cli, root: Path) -> tuple[int, dict]:
    r = cli(["envs", "--json"], cwd=root)
    return r.exit_code, {e["env"]: e for e in json.loads(r.output)}


def test_dvc_directory_hash_is_computed_as_dvc_records_it(deployed: Path):
    t = staging(deployed)
    for version in ("v0.0.1", "v0.0.2"):
        commit = git(deployed, "rev-parse", f"{NAME}@{version}^{{commit}}")
        files = tree_hashes(t.version_dir(version))
        assert dvc_dir_md5({k: v["md5"] for k, v in files.items()}) == recorded_md5(
            deployed, commit, BUNDLE
        )


def test_a_replaced_model_with_matching_metadata_is_refused(deployed: Path, cli):
    t = staging(deployed)
    code, envs = envs_json(cli, deployed)
    assert code == 0 and envs["staging"]["verified"] is True
    # the attack: v0.0.1's model and its own (consistent) metadata.json put under v0.0.2
    for f in t.version_dir("v0.0.1").iterdir():
        if f.name != "deployment.json":
            shutil.copyfile(f, t.version_dir("v0.0.2") / f.name)
    assert t.load().metadata["files"]  # the bundle's own sha256s agree: that check passes
    r = cli(["serve", "--env", "staging", "--port", "1"], cwd=deployed)
    assert r.exit_code == ExitCode.DEPLOY_FAILED, r.output
    assert "dvc.lock at" in r.output and "refusing to serve" in r.output
    code, envs = envs_json(cli, deployed)
    assert code == ExitCode.DEPLOY_FAILED
    assert envs["staging"]["state"] == "fails verification"
    assert envs["staging"]["verified"] is False
    table = cli(["envs"], cwd=deployed)
    assert table.exit_code == ExitCode.DEPLOY_FAILED and "fails verification" in table.output
    # the next deploy of a different version repairs what is live
    assert api.deploy(deployed, "staging", version="v0.0.1").action == "deployed"
    assert envs_json(cli, deployed)[0] == 0


@pytest.mark.parametrize("where", ["../outside", "ABSOLUTE", "versions/../../outside"])
def test_current_outside_versions_is_refused(deployed: Path, cli, where: str):
    t = staging(deployed)
    outside = deployed / ".mlops" / "envs" / "outside"
    shutil.copytree(t.version_dir("v0.0.2"), outside)  # a complete-looking copy
    link = str(outside) if where == "ABSOLUTE" else where
    tmp = t.root / "current.new"
    os.symlink(link, tmp)
    os.replace(tmp, t.current_link)
    r = cli(["serve", "--env", "staging", "--port", "1"], cwd=deployed)
    assert r.exit_code == ExitCode.DEPLOY_FAILED, r.output
    assert "outside versions/" in r.output
    code, envs = envs_json(cli, deployed)
    assert code == ExitCode.DEPLOY_FAILED and envs["staging"]["state"] == "fails verification"


def test_a_symlinked_version_directory_is_refused(deployed: Path, cli):
    t = staging(deployed)
    elsewhere = deployed / "elsewhere"
    shutil.move(t.version_dir("v0.0.2"), elsewhere)
    os.symlink(elsewhere, t.version_dir("v0.0.2"))
    r = cli(["serve", "--env", "staging", "--port", "1"], cwd=deployed)
    assert r.exit_code == ExitCode.DEPLOY_FAILED and "symlink" in r.output, r.output


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("ftp://bucket/staging", ["unknown storage scheme ftp://", "s3://"]),
        ("gs://bucket/staging", ["needs gcsfs", ".[gs]", "installed here: s3://"]),
        ("azure://container/staging", ["needs adlfs", ".[azure]", "installed here: s3://"]),
        ("s3://user:pw@bucket/staging", ["must not carry credentials"]),
        ("s3://bucket/../staging", ["is not s3://BUCKET/PREFIX", "prefix part '..'"]),
        # what is wrong, which schemes work, and the extra each needs
        ("az://c/x", ["container name 'c' is too short", "3 to 63 characters"]),
        ("s3://b/x", ["bucket name 'b' is too short"]),
        ("http://models.example.com/staging", ["unknown storage scheme http://",
         "a web address", "s3:// (the `s3` extra)", "gs:// or gcs:// (the `gs` extra)",
         "az://, azure:// or abfs:// (the `azure` extra)", "installed here: s3://"]),
    ],
)  # fmt: skip
def test_check_refuses_unknown_schemes_and_missing_filesystems(
    project: Path, cli, url: str, words: list[str]
):
    pipe = project / "pipeline.yaml"
    replace_in(pipe, "target: .mlops/envs/staging", f"target: '{url}'")
    r = cli(["check"], cwd=project)
    assert r.exit_code == ExitCode.USAGE, r.output
    text = " ".join(r.output.split())
    assert "environments.staging.target" in text, text
    for w in words:
        assert w in text, (w, text)
    assert "user:pw" not in text  # a credential in a URL is never echoed
    assert "target: target:" not in text  # the key is named once
    assert not (project / "ftp:").exists() and not (project / "s3:").exists()
    # a pod's `serve --target URL` (no pipeline.yaml) says the same
    r = cli(["serve", "--target", url, "--port", "1"], cwd=project.parent)
    assert r.exit_code == ExitCode.USAGE, r.output
    text = " ".join(r.output.split())
    for w in words:
        assert w in text, (w, text)
    assert "user:pw" not in text


def test_a_live_version_altered_on_disk_is_repaired_by_deploying_it_again(deployed: Path, cli):
    """A byte of the live version changed in a directory target: a new server refuses it (its
    hint: deploy it again), and deploying the same version again repairs the copy under the
    same deployment record instead of calling it a different version; a server following the
    target loads the repaired copy and answered every request meanwhile."""
    import httpx

    from tests.serve_helpers import ROW, free_port, start_cli_server, stop

    t = staging(deployed)
    model = t.version_dir("v0.0.2") / "model.skops"
    record = (t.version_dir("v0.0.2") / "deployment.json").read_bytes()
    port = free_port()
    server = start_cli_server(
        ["--env", "staging", "--poll", "0.2", "--no-log"], cwd=deployed, port=port
    )
    base = f"http://127.0.0.1:{port}"
    try:
        raw = bytearray(model.read_bytes())
        raw[len(raw) // 2] ^= 0xFF
        model.write_bytes(bytes(raw))
        r = cli(["serve", "--env", "staging", "--port", "1"], cwd=deployed)
        assert r.exit_code == ExitCode.DEPLOY_FAILED and "deploy the version again" in r.output
        again = cli(["deploy", "--env", "staging", "--version", "v0.0.2"], cwd=deployed)
        assert again.exit_code == 0, again.output
        assert "different content" not in again.output
        assert "no longer matched its hashes" in again.output
        code, envs = envs_json(cli, deployed)
        assert code == 0 and envs["staging"]["verified"] is True
        assert (t.version_dir("v0.0.2") / "deployment.json").read_bytes() == record
        assert not [p.name for p in t.versions_dir.iterdir() if p.name.startswith(".")]

        def reloaded() -> bool:
            return 'mlops_model_reloads_total{result="ok"} 1' in httpx.get(f"{base}/metrics").text

        deadline = time.monotonic() + 60  # a wait for the next poll, not a timing assertion
        while not reloaded() and time.monotonic() < deadline:
            assert httpx.post(f"{base}/predict", json=[ROW]).json()["version"] == "v0.0.2"
            time.sleep(0.05)
        assert reloaded()
        info = httpx.get(f"{base}/version").json()
        assert info["version"] == "v0.0.2" and info["pending_error"] is None
    finally:
        stop(server)


def test_a_repair_killed_before_its_exchange_leaves_the_old_copy_whole_and_is_redone(
    deployed: Path, cli
):
    """SIGKILL while the repaired copy is complete beside the damaged one: `current` still names
    the whole (damaged, refused) directory, never a half copy; the next deploy removes the
    leftover and repairs."""
    import signal
    import subprocess
    import sys

    from mlops.deploy.faults import FAULT_ENV
    from tests.test_deploy import python_env

    t = staging(deployed)
    model = t.version_dir("v0.0.2") / "model.skops"
    damaged = bytearray(model.read_bytes())
    damaged[len(damaged) // 2] ^= 0xFF
    model.write_bytes(bytes(damaged))
    proc = subprocess.run(
        [sys.executable, "-m", "mlops", "deploy", "--env", "staging", "--version", "v0.0.2"],
        cwd=deployed, env={**python_env(), FAULT_ENV: "kill@install-copied"},
        capture_output=True, text=True,
    )  # fmt: skip
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert model.read_bytes() == bytes(damaged)  # untouched: complete, and still refused
    assert [p.name for p in t.versions_dir.iterdir() if p.name.startswith(".tmp-")]
    again = cli(["deploy", "--env", "staging", "--version", "v0.0.2"], cwd=deployed)
    assert again.exit_code == 0, again.output
    assert envs_json(cli, deployed)[1]["staging"]["verified"] is True
    assert not [p.name for p in t.versions_dir.iterdir() if p.name.startswith(".")]

"""An S3 remote for data and models: a local S3-compatible server (moto's, on 127.0.0.1) stands
in for the object store; DVC, its S3 plugin and mlops are the real parts.

One project pushes its run to `s3://...`; a second clone - another CI runner - pulls the data
and the model from there and finds the pipeline up to date. The credentials come from the
environment only and appear in no file and no output.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

# the s3 extra, moto and flask are part of the test install (scripts/test.sh): without them
# these tests fail
import dvc_s3  # noqa: F401
import moto  # noqa: F401
import pytest

from tests.helpers import git, replace_in
from tests.s3_helpers import moto_server

pytestmark = pytest.mark.slow

BUCKET = "mlops-artifacts"
SECRET = "s3cr3t-" + os.urandom(6).hex()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def s3_server():
    """moto's S3 server on 127.0.0.1 (a child process, stopped after the module)."""
    with moto_server() as endpoint:
        yield endpoint


@pytest.fixture
def aws_env(s3_server, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "mlops-test-key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    import boto3

    s3 = boto3.client("s3", endpoint_url=s3_server)
    if BUCKET not in {b["Name"] for b in s3.list_buckets()["Buckets"]}:
        s3.create_bucket(Bucket=BUCKET)
    return s3


def _texts(root: Path) -> str:
    out = []
    for path in root.rglob("*"):
        if path.is_file() and ".git" not in path.parts and "cache" not in path.parts:
            out.append(path.read_bytes().decode("utf-8", "replace"))
    return "\n".join(out)


def test_runners_share_data_and_models_through_an_s3_remote(
    trained: Path, cli, tmp_path: Path, s3_server: str, aws_env
):
    pipe = trained / "pipeline.yaml"
    replace_in(
        pipe,
        "remote:\n  url: .mlops/remote            # a local DVC remote (git-ignored); use "
        "s3://... for a shared one\n",
        f"remote:\n  name: shared\n  url: s3://{BUCKET}/store\n"
        f"  options: {{endpointurl: '{s3_server}'}}\n",
    )
    assert f"s3://{BUCKET}/store" in pipe.read_text()
    ran = cli(["run", "--commit", "--json"], cwd=trained)
    assert ran.exit_code == 0, ran.output
    pushed = json.loads(ran.output)["commit"]["files_pushed"]
    assert pushed > 0
    config = (trained / ".dvc" / "config").read_text()
    assert f"url = s3://{BUCKET}/store" in config and f"endpointurl = {s3_server}" in config
    # `--commit` recorded the new remote with the run (pipeline.yaml and .dvc/config)
    assert git(trained, "status", "--porcelain", "pipeline.yaml", ".dvc/config") == ""
    listed = aws_env.list_objects_v2(Bucket=BUCKET, Prefix="store/")
    assert listed["KeyCount"] >= pushed

    # another runner: a clean clone with no DVC cache pulls everything from the bucket
    runner = tmp_path / "runner"
    git(tmp_path, "clone", "-q", str(trained), str(runner))
    bundle = "models/penguins-classifier/model.skops"
    assert not (runner / bundle).exists()
    dvc = Path(sys.executable).parent / "dvc"
    pulled = subprocess.run(
        [str(dvc), "pull"], cwd=runner, capture_output=True, text=True, check=False
    )
    assert pulled.returncode == 0, pulled.stderr
    assert (runner / bundle).read_bytes() == (trained / bundle).read_bytes()
    status = cli(["status", "--json"], cwd=runner)
    assert status.exit_code == 0, status.output
    assert {s["state"] for s in json.loads(status.output)} == {"up to date"}, status.output

    # credentials: from the environment only, in no file, no output, no log
    for text in (ran.output, status.output, pulled.stdout, pulled.stderr, _texts(trained)):
        assert SECRET not in text
    assert SECRET not in _texts(runner)


def test_a_missing_remote_plugin_is_named_before_anything_is_committed(trained: Path, cli):
    pipe = trained / "pipeline.yaml"
    replace_in(pipe, "url: .mlops/remote", "url: gs://bucket/store")
    result = cli(["run", "--commit"], cwd=trained)
    assert result.exit_code == 2, result.output
    assert "needs DVC's gs plugin" in result.output and "pip install 'dvc[gs]'" in result.output
    assert git(trained, "status", "--porcelain", "dvc.lock") == ""  # nothing was committed

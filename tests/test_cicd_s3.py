"""The CI/CD template on a container runner: the deploy job, run by gitlab-ci-local as a user runs
it, deploys to object storage named by the CI/CD variable MLOPS_TARGETS (moto's S3 server on
127.0.0.1) instead of pipeline.yaml's local directory; then the scheduled monitor job reads the
prediction-log segments a server shipped to that storage.

Real parts: the repository's `.gitlab-ci.yml`, gitlab-ci-local (shell executor), git, DVC,
scikit-learn, s3fs/boto3 against moto_server, `mlops serve` (uvicorn) on 127.0.0.1.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import httpx
import pytest

from tests.helpers import commit_all
from tests.registry_helpers import NAME, origin_for, refs
from tests.serve_helpers import ROW, free_port, start_cli_server, stop
from tests.test_cicd_e2e import PUSH, gcl, run_jobs, tools  # noqa: F401  (a fixture)
from tests.test_deploy import _released_template  # noqa: F401  (a fixture)
from tests.test_remote_s3 import SECRET, s3_server  # noqa: F401  (a fixture)

pytestmark = [pytest.mark.slow, pytest.mark.e2e]
BUCKET = "mlops-ci"
REPO_ROOT = Path(__file__).resolve().parents[1]


def test_the_deploy_and_monitor_jobs_use_object_storage(
    tools,  # noqa: F811
    tmp_path: Path,
    _released_template: Path,  # noqa: F811
    s3_server: str,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
):
    import boto3

    root = tmp_path / "project"
    shutil.copytree(_released_template, root, symlinks=True)
    shutil.copy(REPO_ROOT / ".gitlab-ci.yml", root / ".gitlab-ci.yml")
    commit_all(root, "CI/CD")
    origin = origin_for(root, tmp_path)
    assert "target: .mlops/envs/staging" in (root / "pipeline.yaml").read_text()  # unchanged
    creds = {"AWS_ACCESS_KEY_ID": "mlops-ci-key", "AWS_SECRET_ACCESS_KEY": SECRET,
             "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": s3_server}  # fmt: skip
    s3 = boto3.client("s3", endpoint_url=s3_server, aws_access_key_id="k",
                      aws_secret_access_key="s", region_name="us-east-1")  # fmt: skip
    s3.create_bucket(Bucket=BUCKET)
    prefix = f"s3://{BUCKET}/penguins"
    ci_vars = {**PUSH, **creds, "MLOPS_TARGETS": prefix}

    # ---- the default branch's deploy job: staging lands in S3, the pointer last
    out = run_jobs(root, "deploy-staging", variables=ci_vars)
    assert SECRET not in out
    assert not (root / ".mlops" / "envs").exists()  # no local folder is the deployment
    listed = s3.list_objects_v2(Bucket=BUCKET, Prefix="penguins/staging/")["Contents"]
    objects = {o["Key"].removeprefix("penguins/staging/"): o for o in listed}
    pointer = json.loads(
        s3.get_object(Bucket=BUCKET, Key="penguins/staging/current")["Body"].read()
    )
    version = pointer["version"]
    assert version == "v0.0.2"
    files = [k for k in objects if k.startswith(f"versions/{version}/")]
    assert f"versions/{version}/manifest.json" in files and len(files) > 3
    newest_file = max(objects[k]["LastModified"] for k in files)
    assert objects["current"]["LastModified"] >= newest_file  # the pointer was written last
    assert f"refs/tags/{NAME}#staging#1" in refs(origin)  # what went where: recorded in git

    # ---- a server (a pod: `--target`, no checkout) follows the target and ships its log there
    for key, value in creds.items():
        monkeypatch.setenv(key, value)
    port = free_port()
    args = ["--target", f"{prefix}/staging", "--host-id", "pod-a", "--cache-dir",
            str(tmp_path / "cache"), "--log-dir", str(tmp_path / "spool")]  # fmt: skip
    server = start_cli_server(args, tmp_path, port)
    try:
        with httpx.Client(timeout=30) as client:
            for _ in range(30):
                r = client.post(f"http://127.0.0.1:{port}/predict", json=[ROW])
                assert r.status_code == 200, r.text
    finally:
        log = stop(server)  # SIGTERM: the spool is shipped before exit
    shipped = s3.list_objects_v2(Bucket=BUCKET, Prefix="penguins/staging/logs/pod-a/")
    assert shipped.get("KeyCount", 0) >= 1, log

    # ---- the scheduled monitor job reads the live version and the shipped segments from S3
    sched = {**creds, "MLOPS_TARGETS": prefix, "CI_PIPELINE_SOURCE": "schedule",
             "MLOPS_MONITOR_ENV": "staging"}  # fmt: skip
    proc = gcl(root, "monitor", variables=sched)
    out = proc.stdout + proc.stderr
    assert "nothing to monitor" not in out, out[-4000:]
    assert f"staging: {NAME} {version}" in out and "30 rows" in out, out[-4000:]
    assert f"from 1 host(s) at {prefix}/staging" in out, out[-4000:]  # the shipped segments
    # 30 copies of one row drift from the training data: exit 7, a breach, and the job says so
    assert "FAIL  monitor" in out and "monitoring breach in staging" in out, out[-4000:]
    assert SECRET not in out
    assert not (root / ".mlops" / "envs").exists()

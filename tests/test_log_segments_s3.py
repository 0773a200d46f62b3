"""Two real `mlops serve` processes ship their logs to one S3 prefix (moto's server on
127.0.0.1); after SIGTERM nothing is left unshipped, and `mlops monitor` over both hosts'
segments reports the figures of the same traffic logged locally."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import moto  # noqa: F401  (part of the test install: scripts/test.sh)
import pytest
import s3fs  # noqa: F401  (the s3 extra)

from mlops.deploy.target import open_target
from mlops.serve.log import log_files
from tests.monitor_helpers import group, serve_rows
from tests.s3_helpers import moto_server
from tests.segment_helpers import compared
from tests.serve_helpers import build_bundle, free_port, start_cli_server, stop

pytestmark = pytest.mark.slow
BUCKET = "mlops-logs"


@pytest.fixture(scope="module")
def s3_server():
    """moto's S3 server on 127.0.0.1 (a child process, stopped after the module)."""
    with moto_server() as endpoint:
        yield endpoint


@pytest.fixture
def aws(s3_server, monkeypatch):
    """Credentials and endpoint in the environment only (servers and monitor inherit them)."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "mlops-test-key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "mlops-test-secret")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server)
    import boto3

    s3 = boto3.client("s3", endpoint_url=s3_server)
    if BUCKET not in {b["Name"] for b in s3.list_buckets()["Buckets"]}:
        s3.create_bucket(Bucket=BUCKET)
    return s3


def _keys(s3, prefix: str) -> list[str]:
    got = s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix)
    return [o["Key"] for o in got.get("Contents", [])]


def test_two_servers_ship_to_s3_and_monitor_reads_both(project: Path, tmp_path: Path, aws, cli):
    bundle = build_bundle(tmp_path / "bundle" / "penguins-classifier")
    target = open_target(project / ".mlops/envs/staging", create=True)
    target.install(bundle, "v0.0.1", name="penguins-classifier", commit="0" * 40)
    target.switch("v0.0.1")
    url = f"s3://{BUCKET}/staging"
    ports = [free_port(), free_port()]
    procs = [
        start_cli_server(
            # --target: the installed version is not registered in git, which --env requires
            [
                *("--target", str(target.root), "--log-url", url),
                *("--host-id", host, "--ship-seconds", "1"),
            ],
            project,
            port,
        )
        for host, port in zip(("host-a", "host-b"), ports, strict=True)
    ]
    rows, labels = group("Dream", n=160, seed=11)
    try:
        with httpx.Client(timeout=10) as c:

            def send(lo: int, hi: int) -> None:
                for i in range(lo, hi):
                    port = ports[i % 2]
                    r = c.post(f"http://127.0.0.1:{port}/predict", json=[rows[i]])
                    assert r.status_code == 200, r.text
                    other = ports[(i + 1) % 2]  # labels may reach another host than the request
                    fb = {"request_id": r.json()["request_id"], "labels": [labels[i]]}
                    assert c.post(f"http://127.0.0.1:{other}/feedback", json=fb).status_code == 202

            send(0, 80)
            deadline = time.monotonic() + 60  # shipped on rotation, while serving
            while len({k.split("/")[2] for k in _keys(aws, "staging/logs/")}) < 2:
                assert time.monotonic() < deadline, "no segment shipped while serving"
                time.sleep(0.2)
            send(80, 160)
    finally:
        outputs = [stop(p) for p in procs]
    # uvicorn shuts down gracefully (lifespan, log, shipper), then re-raises SIGTERM
    assert all(p.returncode in (0, -15) for p in procs), ([p.returncode for p in procs], outputs)
    for host in ("host-a", "host-b"):  # SIGTERM shipped everything: the spools are empty
        assert log_files(project / ".mlops/log-spool" / host) == []
    keys = _keys(aws, "staging/")
    assert {k.split("/")[1] for k in keys} == {"logs", "feedback"}
    assert {k.split("/")[2] for k in keys} == {"host-a", "host-b"}
    assert all(k.endswith(".arrow") for k in keys)
    # the same traffic, logged locally by the same serving code
    serve_rows(bundle, target.predictions_dir, rows, labels, version="v0.0.1")
    local = cli(["monitor", "--env", "staging", "--json"], cwd=project)
    shipped = cli(["monitor", "--env", "staging", "--json", "--log-url", url], cwd=project)
    assert local.exit_code == shipped.exit_code == 7, shipped.output
    a, b = json.loads(local.output), json.loads(shipped.output)
    assert compared(a) == compared(b)
    assert b["traffic"]["rows"] == 160 and b["performance"]["online"]["labelled"] == 160
    assert b["log"]["bytes_parsed"] == 0 and b["log"]["bytes_from_index"] > 0
    assert "mlops-test-secret" not in shipped.output + "".join(outputs)

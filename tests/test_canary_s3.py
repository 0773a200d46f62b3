"""A canary release in an object-store target (moto's S3 server on 127.0.0.1): the record is
one object beside `current`, carrying the candidate's manifest hash; a real server following
the bucket routes to the verified candidate and refuses a record whose hash does not match."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest

from mlops.deploy import canary as records
from mlops.deploy.remote import RemoteTarget, open_any
from mlops.serve.canary import to_canary
from mlops.serve.service import ServeConfig
from tests.canary_helpers import bundle, wait_for
from tests.s3_helpers import moto_server
from tests.serve_helpers import ROW, ThreadServer

BUCKET = "mlops-canary"


@pytest.fixture(scope="module")
def s3_server():
    with moto_server() as endpoint:
        yield endpoint


@pytest.fixture
def s3_target(s3_server, monkeypatch, tmp_path: Path) -> RemoteTarget:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "mlops-test-key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-a-real-secret")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server)
    import boto3

    s3 = boto3.client("s3", endpoint_url=s3_server)
    if BUCKET not in {b["Name"] for b in s3.list_buckets()["Buckets"]}:
        s3.create_bucket(Bucket=BUCKET)
    target = open_any(f"s3://{BUCKET}/{tmp_path.name}/staging")
    assert isinstance(target, RemoteTarget)
    bundles = tmp_path / "bundles"
    target.install(bundle(bundles, 1.0), "v0.0.1", name="penguins-classifier")
    target.install(bundle(bundles, 0.5), "v0.0.2", name="penguins-classifier")
    target.switch("v0.0.1")
    return target


def test_canary_record_in_s3_is_followed_and_verified(s3_target: RemoteTarget, tmp_path: Path):
    record = {
        "id": "s3", "mode": "canary", "version": "v0.0.2", "percent": 40, "live": "v0.0.1",
        "step_started": time.time(), **records.hashes_of(s3_target, "v0.0.2"),
    }  # fmt: skip
    records.write_record(s3_target, record)
    assert records.read_record(s3_target)["manifest_sha256"] == record["manifest_sha256"]
    raw = s3_target.store.read_bytes(records.RECORD_KEY)
    assert json.loads(raw)["version"] == "v0.0.2"  # one object, beside `current`
    config = ServeConfig(target=s3_target.root, poll_seconds=0.05, cache_dir=str(tmp_path / "c"))
    server = ThreadServer(config)
    try:
        wait_for(lambda: server.service.canary.release is not None)
        with httpx.Client(base_url=server.url) as client:
            for i in range(200):
                r = client.post("/predict", json=[ROW], headers={"X-Request-ID": f"s3-{i}"})
                assert r.status_code == 200
                want = "v0.0.2" if to_canary(f"s3-{i}", 40) else "v0.0.1"
                assert r.json()["version"] == want
            # a record whose manifest hash is not the candidate's: refused, live answers all
            records.write_record(s3_target, {**record, "manifest_sha256": "0" * 64})
            wait_for(lambda: server.service.canary.error is not None)
            assert server.service.canary.release is None
            r = client.post("/predict", json=[ROW], headers={"X-Request-ID": "s3-0"})
            assert r.json()["version"] == "v0.0.1"
            records.clear_record(s3_target)
            assert records.read_record(s3_target) is None
    finally:
        server.stop()


def test_a_record_without_hashes_is_refused_in_object_storage(s3_target: RemoteTarget):
    from mlops.deploy.integrity import IntegrityError

    s3_target.store.write_bytes(
        records.RECORD_KEY, b'{"mode": "canary", "version": "v0.0.2", "percent": 10}'
    )
    with pytest.raises(IntegrityError):
        records.read_record(s3_target)

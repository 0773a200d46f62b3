"""The deploy lease of an object-store target against real concurrency: several `mlops` processes
that all find the same stale lease (its holder was SIGKILLed) never hold the target together.
Real parts: moto_server on 127.0.0.1, s3fs, separate Python processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from itertools import combinations

import pytest

from mlops.deploy import remote
from mlops.deploy.remote import open_any
from mlops.errors import DeployError
from tests.test_remote_s3 import SECRET, s3_server  # noqa: F401  (a fixture)

pytestmark = pytest.mark.slow
BUCKET = "mlops-leases"

HOLD = """
import json, sys, time
from mlops.deploy.remote import open_any
target = open_any(sys.argv[1])
start = float(sys.argv[2])
while time.time() < start:
    time.sleep(0.001)
with target.lock():
    entered = time.time()
    time.sleep(0.5)
    left = time.time()
print(json.dumps([entered, left]))
"""

KILLED = """
import sys, time
from mlops.deploy.remote import open_any
with open_any(sys.argv[1]).lock():
    print("holding", flush=True)
    time.sleep(600)
"""


@pytest.fixture
def env(s3_server: str) -> dict[str, str]:  # noqa: F811
    creds = {"AWS_ACCESS_KEY_ID": "lease-key", "AWS_SECRET_ACCESS_KEY": SECRET,
             "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": s3_server}  # fmt: skip
    import boto3

    s3 = boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1",
                      aws_access_key_id="k", aws_secret_access_key="s")  # fmt: skip
    if BUCKET not in {b["Name"] for b in s3.list_buckets()["Buckets"]}:
        s3.create_bucket(Bucket=BUCKET)
    return creds


def _holders(url: str, env: dict[str, str], n: int) -> list[tuple[float, float]]:
    start = time.time() + 3.0  # every process is started and imported by then
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", HOLD, url, str(start)],
            env={**os.environ, **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(n)
    ]
    spans = []
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        spans.append(tuple(json.loads(out)))
    return spans


@pytest.mark.parametrize("round_", range(3))
def test_waiters_that_find_one_stale_lease_never_hold_it_together(env, monkeypatch, round_):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    url = f"s3://{BUCKET}/race-{round_}-{os.urandom(3).hex()}/staging"
    target = open_any(url)
    # a deploy SIGKILLed while it holds the lease: the lease stays, naming a dead pid
    holder = subprocess.Popen([sys.executable, "-c", KILLED, url], env={**os.environ, **env},
                              stdout=subprocess.PIPE, text=True)  # fmt: skip
    assert holder.stdout.readline().strip() == "holding"
    holder.kill()
    holder.wait()
    assert target.store.list(""), "the SIGKILLed holder's lease is left in the target"
    spans = sorted(_holders(url, env, 3))
    for (a0, a1), (b0, b1) in combinations(spans, 2):
        assert a1 <= b0 or b1 <= a0, f"two processes held the lease at once: {spans}"
    # and the lease is free afterwards: a new holder gets it at once
    with target.lock():
        pass


def test_a_holder_alive_past_its_expired_lease_is_fenced_off(env, monkeypatch, tmp_path):
    """A deploy that stalls past its lease while another takes the target over must not write
    the pointer, the journal or a removal over the newer holder's work."""
    from tests.serve_helpers import build_bundle

    for key, value in env.items():
        monkeypatch.setenv(key, value)
    url = f"s3://{BUCKET}/fence-{os.urandom(3).hex()}/staging"
    stalled, other = open_any(url), open_any(url)
    stalled.install(build_bundle(tmp_path / "b1"), "v1.0.0")
    stalled.switch("v1.0.0")
    stalled.install(build_bundle(tmp_path / "b2", C=0.05), "v1.1.0")
    monkeypatch.setattr(remote, "LEASE_SECONDS", 0.5)  # the stalled deploy's lease is short
    with stalled.lock():
        time.sleep(1.0)  # ...and expires while its holder is alive
        monkeypatch.setattr(remote, "LEASE_SECONDS", 1800)
        with other.lock():  # another deploy takes the expired lease over
            other.write_journal({"id": "other"})
            assert other.switch("v1.1.0") == "v1.0.0"
        writes = [lambda: stalled.switch("v1.0.0"), stalled.clear_current, stalled.drop_journal]
        writes.append(lambda: stalled.write_journal({"id": "stalled"}))
        for write in writes:
            with pytest.raises(DeployError, match="expired and generation"):
                write()
    assert other.current_version() == "v1.1.0"
    assert other.read_journal() == {"id": "other"}
    with stalled.lock():  # a fresh lease works again
        stalled.drop_journal()

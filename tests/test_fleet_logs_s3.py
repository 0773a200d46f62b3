"""After the merge of 15a and 15b: a fleet on an S3 target ships its logs to the target itself
(no --log-url), and `mlops monitor --env staging` reads every host's segments from it."""

from __future__ import annotations

import json

import httpx
import pytest

from mlops import api
from tests.monitor_helpers import group
from tests.serve_helpers import free_port, start_cli_server, stop
from tests.test_deploy import _released_template  # noqa: F401  (a fixture)
from tests.test_deploy_s3 import on_s3, s3_env  # noqa: F401  (fixtures)
from tests.test_remote_s3 import s3_server  # noqa: F401  (a fixture)

pytestmark = pytest.mark.slow


def test_a_fleet_on_s3_ships_to_the_target_and_monitor_env_reads_it(on_s3, tmp_path, cli):  # noqa: F811
    root, url = on_s3
    assert api.deploy(root, "staging").action == "deployed"
    ports = [free_port(), free_port()]
    procs = [
        start_cli_server(
            ["--target", url, "--host-id", "pod-a", "--ship-seconds", "1",
             "--cache-dir", str(tmp_path / "cache-a")], tmp_path, ports[0]),
        start_cli_server(
            ["--env", "staging", "--host-id", "pod-b", "--cache-dir", str(tmp_path / "cache-b")],
            root, ports[1]),
    ]  # fmt: skip
    rows, labels = group(None, n=60, seed=3)
    try:
        with httpx.Client(timeout=10) as c:
            for i, row in enumerate(rows):
                r = c.post(f"http://127.0.0.1:{ports[i % 2]}/predict", json=[row])
                assert r.status_code == 200, r.text
                fb = {"request_id": r.json()["request_id"], "labels": [labels[i]]}
                back = c.post(f"http://127.0.0.1:{ports[i % 2]}/feedback", json=fb)
                assert back.status_code == 202
    finally:
        for p in procs:
            stop(p)
    r = cli(["monitor", "--env", "staging", "--json"], cwd=root)
    assert r.exit_code in (0, 7), r.output
    report = json.loads(r.output)
    assert report["traffic"]["rows"] == 60, report["log"]
    assert report["performance"]["online"]["labelled"] == 60
    assert "2 host(s)" in " ".join(report["log"]["notes"])

"""Serving a canary or shadow release (mlops.serve.canary): the share and stickiness of the
router, a real server following a local target's canary record over HTTP, shadow scoring that
changes no answer, stepping with zero failed requests, and records that must be refused.
Real parts: scikit-learn bundles, uvicorn on 127.0.0.1, the prediction log on disk."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import httpx
import pytest

from mlops.deploy import canary as records
from mlops.deploy.integrity import IntegrityError
from mlops.serve.canary import BUCKETS, bucket, to_canary
from mlops.serve.log import LogLimits
from mlops.serve.service import ServeConfig
from tests.canary_helpers import start_release, two_versions, wait_for
from tests.serve_helpers import ROW, ThreadServer


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("canary-bundles")


def serve(target_root: Path, log_dir: Path | None = None) -> ThreadServer:
    config = ServeConfig(
        target=str(target_root),
        poll_seconds=0.05,
        log_dir=str(log_dir) if log_dir else None,
        log_limits=LogLimits(flush_seconds=0.05),
    )
    return ThreadServer(config)


# ---- the router ---------------------------------------------------------------------------


@pytest.mark.parametrize("percent", [1, 10, 25, 50, 90])
def test_share_within_two_points_over_10000_requests(percent: float):
    ids = [f"req-{i}" for i in range(10_000)]
    share = sum(to_canary(k, percent) for k in ids) / len(ids) * 100
    assert abs(share - percent) <= 2, share
    # client keys of another shape, too
    keys = [f"client-{i:06d}@example.org" for i in range(10_000)]
    share = sum(to_canary(k, percent) for k in keys) / len(keys) * 100
    assert abs(share - percent) <= 2, share


def test_routing_is_sticky_and_grows_monotonically():
    keys = [f"user{i}" for i in range(2000)]
    at10 = {k for k in keys if to_canary(k, 10)}
    at50 = {k for k in keys if to_canary(k, 50)}
    assert at10 <= at50  # a client on the canary at 10% stays on it at 50%
    assert all(to_canary(k, 10) == (k in at10) for k in keys)  # same key, same answer
    assert not any(to_canary(k, 0) for k in keys) and all(to_canary(k, 100) for k in keys)
    assert bucket("user1") == bucket(b"user1") and 0 <= bucket("x") < BUCKETS


# ---- a real server following the record ---------------------------------------------------------


def test_http_canary_share_stickiness_and_labels(tmp_path: Path, bundles: Path):
    target = two_versions(tmp_path, bundles)
    server = serve(target.root)
    try:
        with httpx.Client(base_url=server.url) as client:
            assert client.post("/predict", json=[ROW]).headers["x-model-role"] == "live"
            start_release(target, "canary", 30)
            wait_for(lambda: server.service.canary.release is not None)
            roles = []
            for i in range(600):
                r = client.post("/predict", json=[ROW], headers={"X-Request-ID": f"r{i}"})
                assert r.status_code == 200
                body = r.json()
                assert r.headers["x-model-version"] == body["version"]
                role = r.headers["x-model-role"]
                assert body["version"] == ("v0.0.2" if role == "canary" else "v0.0.1")
                assert (role == "canary") == to_canary(f"r{i}", 30)  # the router decides
                roles.append(role)
            share = roles.count("canary") / len(roles)
            assert 0.22 < share < 0.38, share
            for key in ("alice", "bob", "carol", "dave"):
                seen = {
                    client.post("/predict", json=[ROW], headers={"X-Client-Key": key}).headers[
                        "x-model-version"
                    ]
                    for _ in range(15)
                }
                assert len(seen) == 1, (key, seen)  # a client sticks to one version
            metrics = client.get("/metrics").text
            assert 'mlops_routed_requests_total{version="v0.0.2",role="canary"}' in metrics
            assert "mlops_canary_percent 30" in metrics
            info = client.get("/version").json()
            assert info["release"]["mode"] == "canary" and info["release"]["percent"] == 30
    finally:
        server.stop()


def test_stepping_and_promoting_under_load_fails_no_request(tmp_path: Path, bundles: Path):
    target = two_versions(tmp_path, bundles)
    server = serve(target.root)
    statuses: list[int] = []
    versions: set[str] = set()
    stop = threading.Event()

    def load() -> None:
        with httpx.Client(base_url=server.url) as client:
            i = 0
            while not stop.is_set():
                r = client.post("/predict", json=[ROW], headers={"X-Request-ID": f"l{i}"})
                statuses.append(r.status_code)
                versions.add(r.headers.get("x-model-version", ""))
                i += 1

    worker = threading.Thread(target=load)
    worker.start()
    try:
        record = start_release(target, "canary", 10)
        wait_for(lambda: server.service.canary.release is not None)
        for percent in (50,):
            records.write_record(target, {**record, "percent": percent})
            wait_for(lambda p=percent: server.service.canary.release.percent == p)
            wait_for(lambda: len(statuses) > 50)
        target.switch("v0.0.2")  # promotion past the last step: current, then the record goes
        records.clear_record(target)
        wait_for(lambda: server.service.model.version == "v0.0.2")
        wait_for(lambda: server.service.canary.release is None)
        n = len(statuses)
        wait_for(lambda: len(statuses) > n + 30)
    finally:
        stop.set()
        worker.join(timeout=30)
        server.stop()
    assert statuses and set(statuses) == {200}, {s for s in statuses if s != 200}
    assert versions == {"v0.0.1", "v0.0.2"}


def test_shadow_scores_every_request_off_path_and_changes_no_answer(tmp_path: Path, bundles: Path):
    target = two_versions(tmp_path, bundles, live_C=1.0, cand_C=0.0001)  # a very different model
    log_dir = tmp_path / "log"
    server = serve(target.root, log_dir)
    rows = [
        dict(ROW, bill_length_mm=35.0 + i * 0.5, flipper_length_mm=175.0 + i) for i in range(40)
    ]
    try:
        with httpx.Client(base_url=server.url) as client:
            before = [client.post("/predict", json=[row]).json()["predictions"] for row in rows]
            start_release(target, "shadow")
            wait_for(lambda: server.service.canary.release is not None)
            after = []
            for i, row in enumerate(rows):
                r = client.post("/predict", json=[row], headers={"X-Request-ID": f"s{i}"})
                assert r.headers["x-model-role"] == "live"
                assert r.json()["version"] == "v0.0.1"
                after.append(r.json()["predictions"])
            assert after == before  # the shadow changes no answer
            server.service.canary.drain()
            metrics = client.get("/metrics").text
            assert 'mlops_shadow_predictions_total{version="v0.0.2",result="scored"} 40' in metrics
    finally:
        server.stop()  # the log is flushed and closed
    entries = [json.loads(line) for f in sorted(log_dir.glob("*.jsonl")) for line in f.open()]
    shadow = {e["request_id"]: e for e in entries if e.get("endpoint") == "shadow"}
    live = {e["request_id"]: e for e in entries if e["kind"] == "prediction"
            and e.get("endpoint") != "shadow" and e["request_id"].startswith("s")}  # fmt: skip
    assert set(shadow) == set(live) == {f"s{i}" for i in range(40)}
    assert all(e["version"] == "v0.0.2" and e["shadow_of"] == "v0.0.1" for e in shadow.values())
    # the shadow's own predictions are logged: the C=0.0001 model answers one class throughout
    assert len({tuple(e["predictions"]) for e in shadow.values()}) == 1
    assert {tuple(e["predictions"]) for e in live.values()} != {
        tuple(e["predictions"]) for e in shadow.values()
    }


def test_a_full_shadow_queue_drops_and_counts_instead_of_blocking(tmp_path: Path, bundles: Path):
    from mlops.serve.canary import Canary, Release
    from mlops.serve.metrics import Metrics
    from mlops.serve.model import load_model

    target = two_versions(tmp_path, bundles)
    record = start_release(target, "shadow")
    canary = Canary(Metrics(), queue_size=2)
    # the release as `check` sets it, before the scoring thread runs: the queue only fills
    canary.release = Release(record, load_model(target.version_dir("v0.0.2")), ("v0.0.2", ""))
    live = load_model(target.version_dir("v0.0.1"))
    batch = live.spec.from_records([ROW], 10)
    for i in range(5):
        canary.shadow_copy(live, batch, f"q{i}", ["Adelie"])  # returns at once, never waits
    assert canary.shadow.series[("v0.0.2", "dropped")] == 3
    assert canary._queue.qsize() == 2


# ---- records that must be refused ------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        b"[]",
        b'{"mode": "canary", "version": "../../etc", "percent": 10}',
        b'{"mode": "canary", "version": "v0.0.2", "percent": 250}',
        b'{"mode": "canary", "version": "v0.0.2", "percent": NaN}',
        b'{"mode": "shadow", "version": "v0.0.2", "percent": 10}',
        b'{"mode": "blue-green", "version": "v0.0.2", "percent": 10}',
        b'{"mode": "canary", "version": "v0.0.2", "percent": "10"}',
    ],
)
def test_bad_records_are_refused(tmp_path: Path, raw: bytes):
    with pytest.raises(IntegrityError):
        records.parse_record(raw, "canary.json")


def test_server_keeps_serving_live_when_the_record_is_bad_or_the_candidate_altered(
    tmp_path: Path, bundles: Path
):
    target = two_versions(tmp_path, bundles)
    server = serve(target.root)
    try:
        with httpx.Client(base_url=server.url) as client:
            (target.root / records.RECORD_FILE).write_text('{"mode": "canary", "version": "/x"}')
            wait_for(lambda: server.service.canary.error is not None)
            r = client.post("/predict", json=[ROW])
            assert r.status_code == 200 and r.json()["version"] == "v0.0.1"
            # a candidate whose bytes changed after install is never loaded
            model = next((target.version_dir("v0.0.2")).glob("*.skops"))
            model.write_bytes(model.read_bytes() + b"x")
            start_release(target, "canary", 100 - 1e-9)
            wait_for(lambda: "canary v0.0.2" in str(server.service.canary.error))
            assert server.service.canary.release is None
            for i in range(20):
                r = client.post("/predict", json=[ROW], headers={"X-Request-ID": f"b{i}"})
                assert r.status_code == 200 and r.json()["version"] == "v0.0.1"
            assert client.get("/version").json()["release"]["error"]
    finally:
        server.stop()

"""Judging a release against live (mlops.monitor.canary) on traffic a real server answered and
logged: a seeded worse model is aborted, an equally good one promoted, a shadow is compared on
the same requests, and more 5xx answers abort. Real parts: scikit-learn bundles, uvicorn on
127.0.0.1, the prediction log and its columnar reader, /feedback labels."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from mlops.config.models import CanarySpec
from mlops.monitor.canary import compare
from mlops.monitor.logdata import read_columns
from mlops.serve.log import LogLimits
from mlops.serve.service import ServeConfig
from tests.canary_helpers import start_release, two_versions, wait_for
from tests.serve_helpers import FEATURES, ThreadServer, penguins

SPEC = CanarySpec(min_requests=100)


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("canary-monitor-bundles")


def traffic(tmp_path: Path, bundles: Path, cand_C: float, mode: str, percent: float = 50):
    """Every penguin sent once through a server running a release, then labelled."""
    target = two_versions(tmp_path, bundles, live_C=1.0, cand_C=cand_C)
    log_dir = tmp_path / "log"
    config = ServeConfig(
        target=str(target.root), poll_seconds=0.05, log_dir=str(log_dir),
        log_limits=LogLimits(flush_seconds=0.05),
    )  # fmt: skip
    server = ThreadServer(config)
    record = start_release(target, mode, percent)
    df = penguins().dropna(subset=FEATURES).reset_index(drop=True)
    try:
        wait_for(lambda: server.service.canary.release is not None)
        with httpx.Client(base_url=server.url) as client:
            for i, row in enumerate(df[FEATURES].to_dict("records")):
                r = client.post("/predict", json=[row], headers={"X-Request-ID": f"p{i}"})
                assert r.status_code == 200
            server.service.canary.drain()
            feedback = [{"request_id": f"p{i}", "label": y} for i, y in enumerate(df["species"])]
            assert client.post("/feedback", json=feedback).status_code == 202
    finally:
        server.stop()
    return read_columns(log_dir), record


def judge(columns, record, spec: CanarySpec = SPEC):
    return compare(columns, env="staging", record=record, live="v0.0.1", spec=spec,
                   metric="accuracy", min_labels=30, task="classification")  # fmt: skip


def test_a_seeded_worse_canary_is_aborted(tmp_path: Path, bundles: Path):
    columns, record = traffic(tmp_path, bundles, cand_C=0.0001, mode="canary")
    report = judge(columns, record)
    found = {f.name: f for f in report.findings}
    assert report.decision == "abort", report.to_dict()
    assert found["metric"].worse and found["metric"].candidate < found["metric"].live - 0.3
    assert any(b.startswith("metric:") for b in report.breaches)
    assert found["prediction_drift"].p_adjusted < 0.05  # reported (not in abort_on by default)
    assert not found["errors"].worse
    assert report.requests["live"] + report.requests["candidate"] == columns.predictions.num_rows


def test_a_canary_as_good_as_live_is_promoted(tmp_path: Path, bundles: Path):
    columns, record = traffic(tmp_path, bundles, cand_C=0.5, mode="canary")
    report = judge(columns, record)
    assert report.breaches == [], report.to_dict()
    assert report.decision == "promote", report.reason
    assert min(report.requests.values()) >= SPEC.min_requests
    # the same traffic with a higher minimum: not enough evidence yet
    assert judge(columns, record, CanarySpec(min_requests=10_000)).decision == "wait"


def test_a_worse_shadow_is_compared_on_the_same_requests(tmp_path: Path, bundles: Path):
    columns, record = traffic(tmp_path, bundles, cand_C=0.0001, mode="shadow")
    report = judge(columns, record)
    # every request was answered by live and scored by the shadow
    assert report.requests["live"] == report.requests["candidate"] > 300
    assert report.agreement is not None and report.agreement < 0.6
    assert report.decision == "abort"
    assert {f.name for f in report.findings} == {"metric", "prediction_drift"}  # no latency
    # the environment's own monitor counts each request once and judges live's rows only
    from mlops.config.models import MonitoringSpec
    from mlops.monitor.checks import LiveModel, analyse
    from mlops.monitor.window import Window

    target = tmp_path / "target"
    live = LiveModel.read(target / "versions/v0.0.1", "v0.0.1", extra_files=("deployment.json",))
    whole = Window(None, 2e9, "all")
    monitored = analyse(columns, live, MonitoringSpec(), whole, env="staging")
    assert monitored.traffic["answered"] == report.requests["live"]
    assert monitored.traffic["live_rows"] == report.requests["live"]


def test_a_good_shadow_agrees_and_is_promoted(tmp_path: Path, bundles: Path):
    columns, record = traffic(tmp_path, bundles, cand_C=0.5, mode="shadow")
    report = judge(columns, record)
    assert report.agreement > 0.95 and report.decision == "promote", report.to_dict()


def test_more_server_errors_than_live_abort(tmp_path: Path):
    """5xx answers come from the log's error entries, labelled with the version that failed."""
    import pyarrow as pa

    from mlops.monitor.logdata import LogColumns

    n = 400
    pred = pa.table({
        "ts": pa.array([10.0] * n), "request_id": [f"e{i}" for i in range(n)],
        "row": pa.array([0] * n, pa.int32()), "n": pa.array([1] * n, pa.int32()),
        "version": ["v0.0.1" if i % 2 else "v0.0.2" for i in range(n)],
        "endpoint": ["predict"] * n, "latency_ms": [1.0] * n, "prediction": ["Adelie"] * n,
    })  # fmt: skip
    errors = pa.table({
        "ts": [11.0] * 30, "request_id": [f"x{i}" for i in range(30)],
        "endpoint": ["predict"] * 30, "status": pa.array([500] * 30, pa.int32()),
        "error": ["internal"] * 30, "version": ["v0.0.2"] * 30, "latency_ms": [1.0] * 30,
    })  # fmt: skip
    columns = LogColumns(pred, pa.table({}), errors, "memory")
    record = {"mode": "canary", "version": "v0.0.2", "percent": 50, "step_started": 0.0}
    report = judge(columns, record)
    assert report.decision == "abort"
    assert [b.split(":")[0] for b in report.breaches] == ["errors", "errors"]
    # outside the step's window they do not count
    later = judge(columns, {**record, "step_started": 12.0})
    assert later.decision == "wait" and later.requests == {"live": 0, "candidate": 0}

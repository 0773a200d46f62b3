"""`mlops serve --workers 2`: every scrape, whichever worker answers, reports the host totals."""

from __future__ import annotations

import os
import signal
import socket
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from mlops.serve.metrics import Metrics
from tests.serve_helpers import ROW, build_bundle, free_port, start_cli_server, stop


def _samples(text: str) -> dict[tuple[str, tuple], float]:
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_bundle(tmp_path_factory.mktemp("bundle") / "v1")


def test_two_workers_report_the_same_totals(tmp_path: Path, bundle: Path, monkeypatch):
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    port = free_port()
    proc = start_cli_server(["--bundle", str(bundle), "--workers", "2"], tmp_path, port)
    n = 40
    try:
        for _ in range(n):  # a new connection each time: the kernel spreads them over workers
            r = httpx.post(f"http://127.0.0.1:{port}/predict", json=[ROW, ROW], timeout=10)
            assert r.status_code == 200
        scrapes = []
        for _ in range(12):
            r = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
            assert r.status_code == 200
            scrapes.append(_samples(r.text))
    finally:
        stop(proc)
    for s in scrapes:
        assert s[("mlops_requests_total", (("endpoint", "predict"), ("status", "200")))] == n
        assert s[("mlops_prediction_rows_total", (("version", "unversioned"),))] == 2 * n
        classes = {k: v for k, v in s.items() if k[0] == "mlops_predictions_total"}
        assert sum(classes.values()) == 2 * n
        assert all(dict(k[1])["version"] == "unversioned" for k in classes)
        assert s[("mlops_request_duration_seconds_count", (("endpoint", "predict"),))] == n
        info = [k for k, v in s.items() if k[0] == "mlops_model_info" and v == 1]
        assert len(info) == 1 and dict(info[0][1])["version"] == "unversioned"
        assert s[("mlops_requests_in_flight", ())] == 0


def test_the_single_worker_path_does_not_share(tmp_path: Path, monkeypatch):
    """One worker keeps its plain in-process figures (no shared directory is touched)."""
    from mlops.serve import multiproc

    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    assert multiproc.enabled()
    m = Metrics()
    assert all(f.backend is None for f in m.families)
    m.requests.inc("predict", 200)
    assert b'mlops_requests_total{endpoint="predict",status="200"} 1' in m.render()
    assert list(tmp_path.iterdir()) == []


def test_prepare_dir_wipes_a_previous_run(tmp_path: Path, monkeypatch):
    from mlops.serve import multiproc

    old = tmp_path / "counter_123.db"
    old.write_bytes(b"x")
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    path, made = multiproc.prepare_dir()
    assert path == str(tmp_path) and not made and not old.exists()
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR")
    path, made = multiproc.prepare_dir()
    assert made and Path(path).is_dir()
    multiproc.remove_dir(path)
    assert not Path(path).exists()


def test_two_workers_ship_every_row_on_sigterm(tmp_path: Path, bundle: Path):
    """Both workers spool to one directory under one host id; SIGTERM ships all of it once."""
    from mlops.monitor.segments import read_segments
    from mlops.serve.log import log_files

    port = free_port()
    store = tmp_path / "store"
    args = ["--bundle", str(bundle), "--workers", "2", "--log-url", str(store), "--host-id", "h1"]
    proc = start_cli_server(args, tmp_path, port)
    n = 30
    try:
        for _ in range(n):
            r = httpx.post(f"http://127.0.0.1:{port}/predict", json=[ROW], timeout=10)
            assert r.status_code == 200
    finally:
        stop(proc)
    assert log_files(tmp_path / ".mlops/log-spool/h1") == []
    shipped = read_segments(str(store))
    assert shipped.predictions.num_rows == n
    assert len(set(shipped.predictions["request_id"].to_pylist())) == n  # none twice


def _live_pids(shared: Path) -> set[int]:
    return {int(f.stem.rsplit("_", 1)[-1]) for f in shared.glob("gauge_live*_*.db")}


def _until(check, seconds: float = 120.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError("condition never held")


def test_a_sigkilled_workers_live_gauges_are_dropped(tmp_path: Path, bundle: Path, monkeypatch):
    """uvicorn restarts a SIGKILLed worker; the request it had in flight leaves the figures."""
    shared = tmp_path / "metrics"
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(shared))
    port = free_port()
    proc = start_cli_server(["--bundle", str(bundle), "--workers", "2"], tmp_path, port)
    url = f"http://127.0.0.1:{port}"

    def in_flight() -> float:
        r = httpx.get(f"{url}/metrics", timeout=10)
        return _samples(r.text).get(("mlops_requests_in_flight", ()), 0.0)

    stuck = socket.create_connection(("127.0.0.1", port))
    try:
        workers = _until(lambda: p if len(p := _live_pids(shared)) == 2 else None)
        # a request whose body never ends: in flight in whichever worker took it
        stuck.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      b"Content-Length: 1000\r\n\r\n[")  # fmt: skip
        _until(lambda: in_flight() == 1)
        for pid in workers:
            os.kill(pid, signal.SIGKILL)
        stuck.close()
        # the supervisor starts two new workers; a scrape of either drops the dead ones' gauges
        _until(lambda: len(_live_pids(shared) - workers) == 2)
        _until(lambda: httpx.get(f"{url}/ready", timeout=10).status_code == 200)
        assert in_flight() == 0
        assert not (_live_pids(shared) & workers)  # their live files are gone
        r = httpx.post(f"{url}/predict", json=[ROW], timeout=10)
        assert r.status_code == 200
    finally:
        stuck.close()
        stop(proc)

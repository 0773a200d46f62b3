"""`mlops serve` as a user runs it: errors before the port opens, and versions switched under
load without a failed request."""

from __future__ import annotations

import shutil
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from mlops.deploy.target import open_target
from mlops.errors import ExitCode
from mlops.serve.log import read_log
from mlops.serve.service import ServeConfig
from tests.serve_helpers import (
    ROW,
    ThreadServer,
    build_bundle,
    free_port,
    rss_kb,
    start_cli_server,
    stop,
)


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two genuinely different models (C=1 and C=0.05) of the penguins."""
    root = tmp_path_factory.mktemp("bundles")
    return {
        "v1": build_bundle(root / "v1", C=1.0, commit="1" * 40),
        "v2": build_bundle(root / "v2", C=0.05, commit="2" * 40),
    }


def staging(project: Path):
    return open_target(project / ".mlops/envs/staging", create=True)


def test_usage_errors_exit_before_serving(project: Path, cli, bundles):
    r = cli(["serve"], cwd=project)
    assert r.exit_code == ExitCode.USAGE and "exactly one of --env" in r.output
    r = cli(["serve", "--env", "qa"], cwd=project)
    assert r.exit_code == ExitCode.USAGE and "staging, production" in r.output
    # `--env staging` with nothing deployed starts and waits (tests/test_serve_first_deploy.py)
    r = cli(["serve", "--bundle", "models/nope"], cwd=project)
    assert r.exit_code == ExitCode.USAGE and "no bundle" in r.output
    (project / "file").write_text("")
    r = cli(["serve", "--bundle", str(bundles["v1"]), "--log-dir", "file/x"], cwd=project)
    assert r.exit_code == ExitCode.USAGE and "--no-log" in r.output


def test_a_tampered_bundle_is_refused_before_the_port_opens(tmp_path: Path, cli, bundles):
    bad = tmp_path / "bad"
    shutil.copytree(bundles["v1"], bad)
    (bad / "schema.json").write_text("{}")
    for workers in ("1", "2"):  # with several workers only the parent checks: same refusal
        r = cli(["serve", "--bundle", str(bad), "--workers", workers], cwd=tmp_path)
        assert r.exit_code == ExitCode.DEPLOY_FAILED and "failed verification" in r.output


def test_missing_serve_extra_says_how_to_install(monkeypatch, tmp_path: Path, cli, bundles):
    monkeypatch.setitem(sys.modules, "uvicorn", None)  # as if the extra were not installed
    r = cli(["serve", "--bundle", str(bundles["v1"])], cwd=tmp_path)
    assert r.exit_code == ExitCode.USAGE
    assert "pip install -e '.[serve]'" in r.output


def test_in_flight_requests_finish_on_the_version_they_started_on(tmp_path: Path, bundles):
    target = open_target(tmp_path / "env", create=True)
    target.install(bundles["v1"], "v1")
    target.switch("v1")
    srv = ThreadServer(ServeConfig(target=str(target.root), poll_seconds=3600))
    try:
        release, started = threading.Event(), threading.Event()
        result = {}

        def slow_body():
            started.set()  # the headers are on their way: the server starts the request
            yield b'{"dataframe_records": ['
            release.wait(10)  # the request is in flight while the version switches
            yield (httpx.Request("POST", "/", json=ROW).content + b"]}")

        def slow_request():
            with httpx.Client(base_url=srv.url, timeout=20) as c:
                result["r"] = c.post(
                    "/invocations",
                    content=slow_body(),
                    headers={"content-type": "application/json"},
                )

        t = threading.Thread(target=slow_request)
        t.start()
        assert started.wait(20)
        in_flight = srv.service.metrics.in_flight.series
        wait_for(lambda: in_flight[()] == 1)  # the server is answering it (and holds v1)
        target.install(bundles["v2"], "v2")
        target.switch("v2")
        assert srv.service.check_for_switch() == "switched"  # what the watcher does each poll
        with httpx.Client(base_url=srv.url, timeout=10) as c:
            assert c.post("/predict", json=ROW).json()["version"] == "v2"
        release.set()
        t.join(20)
        assert result["r"].status_code == 200
        assert result["r"].json()["version"] == "v1"
        assert srv.service.check_for_switch() is None  # nothing new
    finally:
        srv.stop()


def test_load_while_deploying_zero_failures_and_versions_switch(project: Path, bundles):
    """Acceptance: a bounded load test runs while new versions are deployed."""
    shutil.rmtree(project / "data")  # serving needs pipeline.yaml and the target, not the data
    target = staging(project)
    target.install(bundles["v1"], "v1.0.0")
    target.switch("v1.0.0")
    port = free_port()
    # --target: these bundles are not registered in git, so `--env` would refuse them
    proc = start_cli_server(["--target", str(target.root), "--poll", "0.1"], project, port)
    url = f"http://127.0.0.1:{port}"
    stop_flag = threading.Event()
    seen: list[list[tuple[str, int]]] = [[] for _ in range(4)]
    failures: list[str] = []

    def client(i: int) -> None:
        deadline = time.time() + 40  # bounded in time and count, stops by itself
        with httpx.Client(base_url=url, timeout=10) as c:
            for _ in range(20_000):
                if stop_flag.is_set() or time.time() > deadline:
                    return
                try:
                    r = c.post("/invocations", json={"dataframe_records": [ROW, ROW]})
                    if r.status_code != 200:
                        failures.append(f"{r.status_code} {r.text[:200]}")
                        continue
                    seen[i].append((r.json()["version"], len(r.json()["predictions"])))
                except httpx.HTTPError as exc:
                    failures.append(repr(exc))

    threads = [threading.Thread(target=client, args=(i,)) for i in range(4)]
    try:
        for t in threads:
            t.start()
        wait_for(lambda: all(len(s) >= 10 for s in seen))  # every client is busy on v1.0.0
        target.install(bundles["v2"], "v1.1.0")
        target.switch("v1.1.0")
        wait_for(lambda: httpx.get(f"{url}/version").json()["version"] == "v1.1.0")
        wait_for(lambda: all(s[-1][0] == "v1.1.0" for s in seen))
        # a version that fails verification is not switched to
        bad = project / "bad-bundle"
        shutil.copytree(bundles["v1"], bad)
        target.install(bad, "v1.2.0")
        (target.versions_dir / "v1.2.0" / "schema.json").write_text("{}")  # tampered after
        target.switch("v1.2.0")
        wait_for(lambda: httpx.get(f"{url}/version").json()["pending_error"] is not None)
        time.sleep(0.5)
    finally:
        stop_flag.set()
        for t in threads:
            t.join(60)
    try:
        assert failures == []
        versions = [v for s in seen for v, _ in s]
        assert "v1.0.0" in versions and "v1.1.0" in versions and "v1.2.0" not in versions
        for s in seen:  # each client: old version, then new, never back
            order = [v for v, _ in s]
            first_new = order.index("v1.1.0")
            assert set(order[first_new:]) == {"v1.1.0"}
            assert all(n == 2 for _, n in s)
        info = httpx.get(f"{url}/version").json()
        assert info["version"] == "v1.1.0" and info["commit"] == "2" * 40
        assert "failed verification" in info["pending_error"]["error"]
        assert httpx.get(f"{url}/ready").status_code == 200
        metrics = httpx.get(f"{url}/metrics").text
        assert 'mlops_model_reloads_total{result="ok"} 1' in metrics
        assert 'mlops_model_reloads_total{result="failed"} 1' in metrics
    finally:
        output = stop(proc)
    assert proc.returncode in (0, -15), output  # uvicorn re-raises SIGTERM once shut down
    # every answered request is in the log (flushed at shutdown), with the version that answered
    logged = [e for e in read_log(target.predictions_dir) if e["kind"] == "prediction"]
    assert len(logged) == sum(len(s) for s in seen)
    assert {e["version"] for e in logged} == {"v1.0.0", "v1.1.0"}


def wait_for(cond, timeout: float = 30) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if cond():
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def test_fuzz_keeps_memory_bounded(tmp_path: Path, bundles):
    """Acceptance: malformed bodies only get 4xx, the server stays up, its memory stays bounded."""
    import random

    port = free_port()
    args = ["--bundle", str(bundles["v1"]), "--max-body-mb", "0.5", "--max-rows", "1000"]
    proc = start_cli_server(args, tmp_path, port)
    rng = random.Random(7)

    def bodies():
        yield b"{" * 10_000
        yield b"[" * 400_000  # within the body limit, deeply nested
        yield b"x" * 600_000  # over the limit: 413
        yield b'{"dataframe_records": [' + b'{"island": 1},' * 20_000 + b"{}]}"
        yield b'{"dataframe_split": {"columns": ["a"], "data": [[1]]' + b"]" * 1000
        for _ in range(60):
            yield bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 3000)))
        for _ in range(60):
            n = rng.randint(1, 400)
            yield (b'{"instances": [' + b",".join([b'{"bill_length_mm": 1e999}'] * n) + b"]}")

    def fuzz_round(c: httpx.Client) -> set[int]:
        statuses = set()
        for body in bodies():
            r = c.post("/invocations", content=body, headers={"content-type": "application/json"})
            statuses.add(r.status_code)
        return statuses

    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as c:
            first = fuzz_round(c)
            before = rss_kb(proc.pid)
            statuses = set()
            for _ in range(3):
                statuses |= fuzz_round(c)
            after = rss_kb(proc.pid)
            assert all(400 <= s < 500 for s in first | statuses), first | statuses
            assert {400, 413, 422} <= statuses
            assert c.post("/predict", json=ROW).status_code == 200  # still up and right
        assert after - before < 40_000, f"RSS grew {after - before} kB over 3 fuzz rounds"
    finally:
        stop(proc)


def test_several_workers_serve_and_log(tmp_path: Path, bundles):
    port = free_port()
    proc = start_cli_server(["--bundle", str(bundles["v1"]), "--workers", "2"], tmp_path, port)
    try:
        for _ in range(20):  # a new connection each time, so both workers get some
            r = httpx.post(f"http://127.0.0.1:{port}/predict", json=ROW, timeout=10)
            assert r.status_code == 200 and r.json()["predictions"] == ["Adelie"]
    finally:
        output = stop(proc)
    assert "serving penguins-classifier unversioned (per worker, 2 workers)" in output
    logs = list((tmp_path / ".mlops/predictions/v1").glob("*.jsonl"))
    assert logs and sum(len(p.read_text().splitlines()) for p in logs) == 20

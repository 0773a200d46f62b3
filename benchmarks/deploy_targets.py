"""Deployment targets benchmark: `mlops deploy` to S3 against a local directory, and how long a
fleet of servers following an S3 target takes to answer with a new version.

Reproduce (moto's S3 server on 127.0.0.1 stands in for the object store; ~3 min):

    .venv/bin/python benchmarks/deploy_targets.py
    .venv/bin/python benchmarks/deploy_targets.py --servers 2 --poll 1.0 --rounds 5

1. Deploy: one project (the example penguin classifier, trained and registered here) deploys
   the same registered version to a fresh local target and to a fresh S3 target, alternately,
   `--deploy-rounds` times each after one untimed warm-up deploy of each; the median wall time
   of `api.deploy` (resolve, fetch from the DVC cache, verify, install, smoke test, switch,
   record) is reported, and the ratio.
2. Follow: `--servers` `mlops serve --target s3://...` processes (pod mode: no checkout) poll
   every `--poll` seconds. Each round installs a version beside the live one, then writes the
   `current` pointer and times until every server answers `/version` with it. The goal is at
   most 2 poll intervals plus the load time (download, verify, load: measured here in-process).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float = 60.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=2)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError(f"no answer from {url}")


def start_moto() -> tuple[subprocess.Popen, str]:
    port = free_port()
    exe = Path(sys.executable).parent / "moto_server"
    proc = subprocess.Popen(
        [str(exe), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    wait_http(url)
    return proc, url


def released_project(work: Path) -> Path:
    """The example project, trained, committed and registered (v0.0.1)."""
    from mlops import api
    from tests.helpers import commit_all

    project = work / "project"
    api.init(project)
    commit_all(project, "start")
    result = api.run(project)
    if result.error is not None:
        raise SystemExit(f"training failed: {result.error.message}")
    api.commit(project)
    api.register(project)
    return project


def set_target(project: Path, target: str) -> None:
    pipe = project / "pipeline.yaml"
    lines = pipe.read_text().splitlines()
    out, in_staging = [], False
    for line in lines:
        if line.startswith("  staging:"):
            in_staging = True
        elif line.startswith("  ") and not line.startswith("    "):
            in_staging = False
        if in_staging and line.strip().startswith("target:"):
            line = f"    target: {target}"
        out.append(line)
    pipe.write_text("\n".join(out) + "\n")


def bench_deploy(project: Path, rounds: int) -> dict:
    from mlops import api

    times: dict[str, list[float]] = {"local": [], "s3": []}
    for kind in ("local", "s3"):  # warm-up, not timed: the first deploy imports DVC, s3fs...
        set_target(project, ".mlops/bench/warm" if kind == "local" else "s3://bench/warm")
        api.deploy(project, "staging", push=False)
    for i in range(rounds):
        for kind in ("local", "s3"):
            target = f".mlops/bench/{i}" if kind == "local" else f"s3://bench/deploy-{i}"
            set_target(project, target)
            t0 = time.perf_counter()
            result = api.deploy(project, "staging", push=False)
            times[kind].append(time.perf_counter() - t0)
            assert result.action == "deployed", result
    med = {k: statistics.median(v) for k, v in times.items()}
    return {
        "rounds": rounds,
        "local_s": round(med["local"], 3),
        "s3_s": round(med["s3"], 3),
        "ratio_s3_over_local": round(med["s3"] / med["local"], 2),
        "all": {k: [round(x, 3) for x in v] for k, v in times.items()},
    }


def bench_follow(bundle: Path, servers: int, poll: float, rounds: int, work: Path) -> dict:
    import httpx

    from mlops.deploy.remote import RemoteTarget, open_any
    from mlops.serve.model import load_model

    url = "s3://bench/fleet"
    target = open_any(url)
    assert isinstance(target, RemoteTarget)
    names = [f"v1.0.{i}" for i in range(rounds + 1)]
    for name in names:  # every version installed beforehand: a round times the pointer only
        target.install(bundle, name)
    target.switch(names[0])
    # the load time a server adds: download + verify + load, measured once in-process
    t0 = time.perf_counter()
    local = work / "load-check"
    target.download(names[0], local, target.pointer())
    load_model(local)
    load_s = time.perf_counter() - t0

    ports = [free_port() for _ in range(servers)]
    procs = []
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    for i, port in enumerate(ports):
        cmd = [sys.executable, "-m", "mlops", "serve", "--target", url, "--poll", str(poll)]
        cmd += ["--cache-dir", str(work / f"cache{i}"), "--port", str(port), "--no-log"]
        procs.append(
            subprocess.Popen(
                cmd, cwd=work, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
        )
    try:
        for port in ports:
            wait_http(f"http://127.0.0.1:{port}/health")
        lags = []
        for name in names[1:]:
            time.sleep(poll * 1.37)  # start each round at a different phase of the polls
            t0 = time.perf_counter()
            target.switch(name)
            pending = set(ports)
            while pending:
                for port in list(pending):
                    r = httpx.get(f"http://127.0.0.1:{port}/version", timeout=5).json()
                    if r.get("version") == name:
                        pending.discard(port)
                time.sleep(0.01)
            lags.append(time.perf_counter() - t0)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(30)
    goal = 2 * poll + load_s
    return {
        "servers": servers,
        "poll_s": poll,
        "rounds": rounds,
        "load_s": round(load_s, 3),
        "lag_median_s": round(statistics.median(lags), 3),
        "lag_max_s": round(max(lags), 3),
        "goal_s": round(goal, 3),
        "within_goal": max(lags) <= goal,
        "all": [round(x, 3) for x in lags],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--servers", type=int, default=2)
    ap.add_argument("--poll", type=float, default=1.0)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--deploy-rounds", type=int, default=3)
    args = ap.parse_args()
    moto, endpoint = start_moto()
    os.environ.update(
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench-secret",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_ENDPOINT_URL=endpoint,
    )
    try:
        import boto3

        boto3.client("s3").create_bucket(Bucket="bench")
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            project = released_project(work)
            deploy = bench_deploy(project, args.deploy_rounds)
            print("deploy:", json.dumps(deploy), flush=True)
            follow = bench_follow(
                project / "models" / "penguins-classifier", args.servers, args.poll,
                args.rounds, work,
            )  # fmt: skip
            print("follow:", json.dumps(follow), flush=True)
    finally:
        moto.terminate()
        moto.wait(10)


if __name__ == "__main__":
    main()

"""Serving latency with a canary release (10% of answers) and with a shadow, against plain serving.

Reproduce:

    .venv/bin/python benchmarks/canary_serving.py            # 5 rounds x 400 requests per server
    .venv/bin/python benchmarks/canary_serving.py --quick    # 2 rounds x 200

Three real `mlops serve --target DIR` processes (one uvicorn worker each, prediction log on, as in
production) follow three local targets holding the same two penguin classifiers: v0.0.1 live,
v0.0.2 installed beside it. One target has no release (plain), one a canary record at 10%, one a
shadow record (every request also scored by v0.0.2 in the server's background thread). One
keep-alive connection per server; one-row `/predict` requests with distinct X-Request-IDs are
sent sequentially, one to each server in turn (the order rotating), so that the machine's noise
falls on all three alike. Each trial starts fresh servers (in a rotated order: one busy core must
not decide the result); the table gives medians over the trials, and the ratios are the median
of each trial's ratio. Server CPU per request (user + system of the server process, threads
included, from /proc) is steadier than wall time on a loaded machine and includes the shadow's
background scoring. Goals (issue 21): p50 with a canary at most 1.2x plain, with a shadow at
most 1.5x.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.serve_helpers import ROW, build_bundle, free_port  # noqa: E402


def targets(base: Path) -> dict[str, Path]:
    from mlops.deploy import canary as records
    from mlops.deploy.target import open_target

    b1 = build_bundle(base / "b1", C=1.0)
    b2 = build_bundle(base / "b2", C=0.5)
    out = {}
    for mode in ("plain", "canary", "shadow"):
        t = open_target(base / mode, create=True)
        t.install(b1, "v0.0.1", name="penguins-classifier")
        t.install(b2, "v0.0.2", name="penguins-classifier")
        t.switch("v0.0.1")
        if mode != "plain":
            records.write_record(t, {
                "id": "bench", "mode": mode, "version": "v0.0.2", "live": "v0.0.1",
                "percent": 10 if mode == "canary" else 0, "step_started": time.time(),
            })  # fmt: skip
        out[mode] = t.root
    return out


def start(target: Path, port: int) -> subprocess.Popen:
    import httpx

    proc = subprocess.Popen(
        [sys.executable, "-m", "mlops", "serve", "--target", str(target), "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=dict(os.environ),
    )  # fmt: skip
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/ready", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError("server did not start")


MODES = ("plain", "canary", "shadow")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (and its threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def trial(roots: dict[str, Path], n: int, seed: int) -> dict[str, dict]:
    """Fresh servers (started in a rotated order), `n` requests each, interleaved."""
    import httpx

    order = list(MODES)[seed % 3 :] + list(MODES)[: seed % 3]
    procs, ports = {}, {}
    lat: dict[str, list[float]] = {m: [] for m in MODES}
    roles = dict.fromkeys(MODES, 0)
    try:
        for mode in order:
            ports[mode] = free_port()
            procs[mode] = start(roots[mode], ports[mode])
        time.sleep(1.5)  # the servers read their canary records at the first poll
        body = json.dumps([ROW]).encode()
        headers = {"content-type": "application/json"}
        clients = {m: httpx.Client(base_url=f"http://127.0.0.1:{ports[m]}") for m in MODES}
        for c in clients.values():
            for _ in range(30):  # warm the connection and the code paths
                c.post("/predict", content=body, headers=headers)
        cpu0 = {m: cpu_seconds(procs[m].pid) for m in MODES}
        for i in range(n):  # one request to each server in turn: noise falls on all three
            for mode in order[i % 3 :] + order[: i % 3]:
                h = {**headers, "x-request-id": f"t{seed}-{i}"}
                t0 = time.perf_counter()
                resp = clients[mode].post("/predict", content=body, headers=h)
                lat[mode].append((time.perf_counter() - t0) * 1000)
                assert resp.status_code == 200
                roles[mode] += resp.headers.get("x-model-role") == "canary"
        time.sleep(0.5)  # the shadow thread finishes what is queued
        cpu = {m: cpu_seconds(procs[m].pid) - cpu0[m] for m in MODES}
        for c in clients.values():
            c.close()
    finally:
        for p in procs.values():
            p.terminate()
            p.wait(timeout=30)
    out = {}
    for mode in MODES:
        xs = sorted(lat[mode])
        out[mode] = {
            "p50_ms": statistics.median(xs),
            "p99_ms": xs[int(0.99 * (len(xs) - 1))],
            "cpu_ms_per_request": cpu[mode] * 1000 / n,
            "canary_share": roles[mode] / n,
        }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json", metavar="FILE", help="also write the figures here")
    args = ap.parse_args()
    trials, n = (3, 300) if args.quick else (7, 600)
    runs = []
    with tempfile.TemporaryDirectory(prefix="canary-bench-") as tmp:
        roots = targets(Path(tmp))
        for t in range(trials):
            runs.append(trial(roots, n, t))
    rows: dict[str, dict] = {}
    for mode in MODES:
        row = {
            k: round(statistics.median(r[mode][k] for r in runs), 3)
            for k in ("p50_ms", "p99_ms", "cpu_ms_per_request", "canary_share")
        }
        row["requests"] = n * trials
        if mode != "plain":  # the median over trials of each trial's ratio
            for k in ("p50_ms", "p99_ms", "cpu_ms_per_request"):
                row[k + "_ratio"] = round(
                    statistics.median(r[mode][k] / r["plain"][k] for r in runs), 3
                )
            row["p50_ratios"] = [round(r[mode]["p50_ms"] / r["plain"]["p50_ms"], 2) for r in runs]
        rows[mode] = row
    print(
        "| serving | requests | p50 ms | p99 ms | server CPU ms/request | p50 / plain "
        "| p99 / plain | CPU / plain | canary share |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for mode, row in rows.items():
        print(
            f"| {mode} | {row['requests']} | {row['p50_ms']:.2f} | {row['p99_ms']:.2f} | "
            f"{row['cpu_ms_per_request']:.2f} | {row.get('p50_ms_ratio', 1):.2f} | "
            f"{row.get('p99_ms_ratio', 1):.2f} | {row.get('cpu_ms_per_request_ratio', 1):.2f} | "
            f"{row['canary_share']:.3f} |"
        )
    for mode in ("canary", "shadow"):
        print(f"{mode}: p50 / plain per trial {rows[mode]['p50_ratios']}")
    print(f"load average: {os.getloadavg()[0]:.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()

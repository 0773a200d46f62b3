"""Serving latency with a canary release (10% of answers) and with a shadow, against plain serving.

Reproduce:

    .venv/bin/python benchmarks/canary_serving.py            # 5 rounds x 400 requests per server
    .venv/bin/python benchmarks/canary_serving.py --quick    # 2 rounds x 200

Three real `mlops serve --target DIR` processes (one uvicorn worker each, prediction log on, as in
production) follow three local targets holding the same two penguin classifiers: v0.0.1 live,
v0.0.2 installed beside it. One target has no release (plain), one a canary record at 10%, one a
shadow record (every request also scored by v0.0.2 in the server's background thread). One
keep-alive client sends one-row `/predict` requests with distinct X-Request-IDs, sequentially,
alternating between the servers round by round so that the machine's noise falls on all three;
latencies are pooled over the rounds. Goals (issue 21): p50 with a canary at most 1.2x plain,
with a shadow at most 1.5x.
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json", metavar="FILE", help="also write the figures here")
    args = ap.parse_args()
    rounds, n = (2, 200) if args.quick else (5, 400)
    import httpx

    lat: dict[str, list[float]] = {m: [] for m in ("plain", "canary", "shadow")}
    roles: dict[str, int] = {m: 0 for m in lat}
    with tempfile.TemporaryDirectory(prefix="canary-bench-") as tmp:
        procs = {}
        try:
            ports = {}
            for mode, root in targets(Path(tmp)).items():
                ports[mode] = free_port()
                procs[mode] = start(root, ports[mode])
            time.sleep(1.5)  # the servers read their canary records at the first poll
            body = json.dumps([ROW]).encode()
            headers = {"content-type": "application/json"}
            for r in range(rounds):
                order = list(lat) if r % 2 == 0 else list(reversed(lat))
                for mode in order:
                    with httpx.Client(base_url=f"http://127.0.0.1:{ports[mode]}") as c:
                        for _ in range(20):  # warm the connection
                            c.post("/predict", content=body, headers=headers)
                        for i in range(n):
                            h = {**headers, "x-request-id": f"r{r}-{i}"}
                            t0 = time.perf_counter()
                            resp = c.post("/predict", content=body, headers=h)
                            lat[mode].append((time.perf_counter() - t0) * 1000)
                            assert resp.status_code == 200
                            roles[mode] += resp.headers.get("x-model-role") == "canary"
        finally:
            for p in procs.values():
                p.terminate()
                p.wait(timeout=30)
    rows = {}
    for mode, xs in lat.items():
        xs.sort()
        rows[mode] = {
            "requests": len(xs),
            "p50_ms": round(statistics.median(xs), 3),
            "p99_ms": round(xs[int(0.99 * (len(xs) - 1))], 3),
            "canary_share": round(roles[mode] / len(xs), 4),
        }
    for mode in ("canary", "shadow"):
        rows[mode]["p50_ratio"] = round(rows[mode]["p50_ms"] / rows["plain"]["p50_ms"], 3)
        rows[mode]["p99_ratio"] = round(rows[mode]["p99_ms"] / rows["plain"]["p99_ms"], 3)
    print("| serving | requests | p50 ms | p99 ms | p50 / plain | p99 / plain | canary share |")
    print("|---|---|---|---|---|---|---|")
    for mode, row in rows.items():
        print(
            f"| {mode} | {row['requests']} | {row['p50_ms']:.2f} | {row['p99_ms']:.2f} | "
            f"{row.get('p50_ratio', 1):.2f} | {row.get('p99_ratio', 1):.2f} | "
            f"{row['canary_share']:.3f} |"
        )
    print(f"load average: {os.getloadavg()[0]:.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()

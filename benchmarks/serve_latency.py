"""Serving benchmark: `mlops serve` against `mlflow models serve` on the same model.

Reproduce (MLflow in its own virtualenv, never a project dependency):

    python3 -m venv /work/peers/mlflow
    /work/peers/mlflow/bin/pip install mlflow scikit-learn skops
    .venv/bin/python benchmarks/serve_latency.py --mlflow-venv /work/peers/mlflow          # ~5 min
    .venv/bin/python benchmarks/serve_latency.py --mlflow-venv /work/peers/mlflow --quick  # ~2 min

LightGBM instead of the linear model (`--lightgbm`: the example project with
`train.estimator: lightgbm.LGBMClassifier`, 100 rounds; the MLflow venv needs lightgbm too):

    /work/peers/mlflow/bin/pip install lightgbm
    .venv/bin/python benchmarks/serve_latency.py --mlflow-venv /work/peers/mlflow --lightgbm

Both servers run one uvicorn worker on 127.0.0.1 and serve the same fitted Pipeline (the example
project's penguin classifier, trained here unless --bundle is given; MLflow gets it through
`mlflow.sklearn.save_model` with an inferred signature, so it enforces a schema too). The same
raw-socket HTTP/1.1 keep-alive client drives both: sequentially (one connection) and with 8
connections in flight, with one-row and 100-row `dataframe_split` bodies. Rounds alternate between
the servers so that a noisy neighbour affects both alike; figures are pooled over the rounds.
mlops serves with its prediction log on, as in production.

The floor is what a request cannot go below: the empty request's p50 (GET /health, same server
stack) plus the in-process time of the same work (parse, validate, predict) measured here.
"""

from __future__ import annotations

import argparse
import json
import os
import selectors
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

ROW = {
    "bill_length_mm": 39.1,
    "bill_depth_mm": 18.7,
    "flipper_length_mm": 181.0,
    "body_mass_g": 3750.0,
    "island": "Torgersen",
    "sex": "male",
}

EXPORT = r"""
import sys, json
import pandas as pd, skops.io as sio, mlflow.sklearn
from mlflow.models import infer_signature
bundle, out = sys.argv[1], sys.argv[2]
path = bundle + "/model.skops"
trusted = sio.get_untrusted_types(file=path)
pipe = sio.load(path, trusted=trusted)
rows = json.loads(sys.argv[3])
df = pd.DataFrame(rows)
mlflow.sklearn.save_model(pipe, out, signature=infer_signature(df, pipe.predict(df)),
                          skops_trusted_types=trusted)
"""


# ---- a small HTTP/1.1 keep-alive client -----------------------------------------------------


def request_bytes(method: str, path: str, body: bytes = b"", ctype: str = "application/json"):
    head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    if method == "POST":
        head += f"Content-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
    return head.encode() + b"\r\n" + body


def complete(buf: bytes) -> tuple[int, bytes, int] | None:
    """(status, body, bytes used) if `buf` holds a whole response."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return None
    head = buf[:end].decode("latin-1").split("\r\n")
    status = int(head[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in head[1:])}
    start = end + 4
    if "content-length" in headers:
        stop = start + int(headers["content-length"])
        return (status, buf[start:stop], stop) if len(buf) >= stop else None
    if headers.get("transfer-encoding") == "chunked":
        body, pos = b"", start
        while True:
            eol = buf.find(b"\r\n", pos)
            if eol < 0:
                return None
            size = int(buf[pos:eol], 16)
            if len(buf) < eol + 2 + size + 2:
                return None
            body += buf[eol + 2 : eol + 2 + size]
            pos = eol + 2 + size + 2
            if size == 0:
                return status, body, pos
    return status, b"", start


def connect(port: int) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def one(port: int, raw: bytes) -> tuple[int, bytes]:
    s = connect(port)
    try:
        s.sendall(raw)
        buf = b""
        while (done := complete(buf)) is None:
            chunk = s.recv(1 << 20)
            if not chunk:
                raise ConnectionError("closed")
            buf += chunk
        return done[0], done[1]
    finally:
        s.close()


def load(port: int, raw: bytes, seconds: float, max_n: int, concurrency: int) -> dict:
    """Send `raw` over `concurrency` keep-alive connections for `seconds` (or `max_n` requests)."""
    sel = selectors.DefaultSelector()
    conns = []
    for _ in range(concurrency):
        s = connect(port)
        s.setblocking(False)
        state = {"sock": s, "buf": b"", "t0": 0.0}
        sel.register(s, selectors.EVENT_READ, state)
        conns.append(state)
    lat: list[float] = []
    failures = 0
    sent = 0
    start = time.perf_counter()
    deadline = start + seconds

    def fire(state: dict) -> None:
        nonlocal sent
        state["t0"] = time.perf_counter()
        state["sock"].sendall(raw)
        sent += 1

    for state in conns:
        fire(state)
    inflight = len(conns)
    while inflight:
        for key, _ in sel.select(timeout=10):
            state = key.data
            chunk = state["sock"].recv(1 << 20)
            if not chunk:
                raise ConnectionError("server closed the connection")
            state["buf"] += chunk
            done = complete(state["buf"])
            if done is None:
                continue
            lat.append(time.perf_counter() - state["t0"])
            failures += done[0] != 200
            state["buf"] = state["buf"][done[2] :]
            if time.perf_counter() < deadline and sent < max_n:
                fire(state)
            else:
                inflight -= 1
    elapsed = time.perf_counter() - start
    for state in conns:
        sel.unregister(state["sock"])
        state["sock"].close()
    return {"lat": lat, "elapsed": elapsed, "failures": failures}


# ---- servers ---------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(port: int, path: str, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            if one(port, request_bytes("GET", path))[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"no answer on {path} after {timeout}s")


def build_bundle(work: Path, lightgbm: bool = False) -> Path:
    from mlops import api
    from tests.helpers import commit_all

    project = work / "project"
    api.init(project)
    if lightgbm:
        params = project / "params.yaml"
        text = params.read_text().split("train:")[0]
        text += "train:\n  estimator: lightgbm.LGBMClassifier\n  n_estimators: 100\n  verbose: -1\n"
        params.write_text(text)
    commit_all(project, "start")
    result = api.run(project)
    if result.error is not None:
        raise SystemExit(f"training failed: {result.error.message}")
    return project / "models" / "penguins-classifier"


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def in_process(bundle: Path, body: bytes, seconds: float) -> dict[str, float]:
    """Per-request time of the same work without HTTP (ms): ours, and scikit-learn's."""
    import pandas as pd

    from mlops.bundle import load_bundle
    from mlops.bundle.inputs import InputSpec, parse_json
    from mlops.bundle.predictor import Predictor

    b = load_bundle(bundle)
    spec = InputSpec.from_schema(b.schema)
    predictor = Predictor.load(b.model, spec)

    def ours() -> None:
        batch = spec.from_invocations(parse_json(body), 10_000)
        predictor.predict(batch.columns, batch.n)

    split = json.loads(body)["dataframe_split"]
    df = pd.DataFrame(split["data"], columns=split["columns"])
    X = b.model[:-1].transform(df)
    est = b.model[-1]

    def timed(fn) -> float:
        fn()
        times = []
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return statistics.median(times) * 1000

    return {
        "mlops parse+validate+predict": timed(ours),
        "sklearn Pipeline.predict_proba(DataFrame)": timed(lambda: b.model.predict_proba(df)),
        "sklearn estimator.predict_proba(ndarray)": timed(lambda: est.predict_proba(X)),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--mlflow-venv", default="/work/peers/mlflow", help="virtualenv with mlflow")
    ap.add_argument("--bundle", help="bundle directory (default: train the example project)")
    ap.add_argument("--lightgbm", action="store_true", help="train a LightGBM model instead")
    ap.add_argument("--quick", action="store_true", help="short rounds (about a minute)")
    ap.add_argument("--rounds", type=int, default=None, help="rounds per scenario and server")
    ap.add_argument("--json", dest="json_out", help="also write raw figures to this file")
    args = ap.parse_args()
    seconds = 1.5 if args.quick else 5.0
    rounds = args.rounds or (2 if args.quick else 3)

    work = Path(tempfile.mkdtemp(prefix="serve-bench-"))
    procs: list[subprocess.Popen] = []
    try:
        bundle = Path(args.bundle).absolute() if args.bundle else build_bundle(work, args.lightgbm)
        venv = Path(args.mlflow_venv)
        export = work / "mlflow-model"
        env = dict(os.environ, MLFLOW_ALLOW_FILE_STORE="true")
        env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env['PATH']}"
        subprocess.run(
            [
                str(venv / "bin/python"),
                "-c",
                EXPORT,
                str(bundle),
                str(export),
                json.dumps([ROW] * 3),
            ],
            check=True,
            env=env,
        )
        ports = {"mlflow": free_port(), "mlops": free_port()}
        procs.append(
            subprocess.Popen(
                [str(venv / "bin/mlflow"), "models", "serve", "-m", str(export), "--env-manager",
                 "local", "-h", "127.0.0.1", "-p", str(ports["mlflow"])],
                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
        )  # fmt: skip
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "mlops", "serve", "--bundle", str(bundle), "--port",
                 str(ports["mlops"]), "--log-dir", str(work / "predictions")],
                cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
        )  # fmt: skip
        wait_ready(ports["mlflow"], "/ping", procs[0])
        wait_ready(ports["mlops"], "/health", procs[1])

        cols = list(ROW)
        bodies = {
            n: json.dumps(
                {"dataframe_split": {"columns": cols, "data": [list(ROW.values())] * n}}
            ).encode()
            for n in (1, 100)
        }
        # the same predictions from both servers, or the comparison means nothing
        answers = {}
        for name, port in ports.items():
            status, body = one(port, request_bytes("POST", "/invocations", bodies[100]))
            assert status == 200, (name, status, body[:300])
            answers[name] = json.loads(body)["predictions"]
        assert answers["mlflow"] == answers["mlops"], "the servers disagree"

        empty = {"mlflow": "/ping", "mlops": "/health"}
        scenarios = [("empty GET", None, 1)]
        scenarios += [(f"{n} row{'s' if n > 1 else ''}", n, c) for n in (1, 100) for c in (1, 8)]
        results: dict = {}
        for label, n, conc in scenarios:
            for name in ports:  # warm-up
                raw = (
                    request_bytes("GET", empty[name])
                    if n is None
                    else request_bytes("POST", "/invocations", bodies[n])
                )
                load(ports[name], raw, 0.3, 50, conc)
            for _ in range(rounds):
                for name, port in ports.items():
                    raw = (
                        request_bytes("GET", empty[name])
                        if n is None
                        else request_bytes("POST", "/invocations", bodies[n])
                    )
                    r = load(port, raw, seconds, 1_000_000, conc)
                    agg = results.setdefault(
                        (label, conc, name), {"lat": [], "elapsed": 0.0, "failures": 0}
                    )
                    agg["lat"] += r["lat"]
                    agg["elapsed"] += r["elapsed"]
                    agg["failures"] += r["failures"]

        floor = in_process(bundle, bodies[1], 1.0 if args.quick else 3.0)
        floor100 = in_process(bundle, bodies[100], 1.0 if args.quick else 3.0)
        report(results, floor, floor100, rounds, seconds)
        if args.json_out:
            raw_out = {
                f"{k[0]} c{k[1]} {k[2]}": {
                    "p50_ms": pct(v["lat"], 0.5) * 1000,
                    "p99_ms": pct(v["lat"], 0.99) * 1000,
                    "rps": len(v["lat"]) / v["elapsed"],
                    "n": len(v["lat"]),
                    "failures": v["failures"],
                }
                for k, v in results.items()
            }
            Path(args.json_out).write_text(
                json.dumps({"results": raw_out, "floor_1": floor, "floor_100": floor100}, indent=2)
            )
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(work, ignore_errors=True)


def report(results: dict, floor: dict, floor100: dict, rounds: int, seconds: float) -> None:
    print(f"\nrounds: {rounds} x {seconds:g}s per server and scenario, alternating servers\n")
    print("| request | clients | server | p50 ms | p99 ms | req/s | rows/s | failed |")
    print("|---|---|---|---|---|---|---|---|")
    for (label, conc, name), v in results.items():
        rows = 1 if not label[0].isdigit() else int(label.split()[0])
        rps = len(v["lat"]) / v["elapsed"]
        print(
            f"| {label} | {conc} | {name} | {pct(v['lat'], 0.5) * 1000:.2f} | "
            f"{pct(v['lat'], 0.99) * 1000:.2f} | {rps:.0f} | "
            f"{rps * rows if label[0].isdigit() else 0:.0f} | {v['failures']} |"
        )
    print("\n| ratio mlops / mlflow | clients | p50 speed-up | req/s | rows/s |")
    print("|---|---|---|---|---|")
    for label, conc, _ in [k for k in results if k[2] == "mlops"]:
        a, b = results[(label, conc, "mlops")], results[(label, conc, "mlflow")]
        speed = pct(b["lat"], 0.5) / pct(a["lat"], 0.5)
        thr = (len(a["lat"]) / a["elapsed"]) / (len(b["lat"]) / b["elapsed"])
        print(f"| {label} | {conc} | {speed:.1f}x | {thr:.1f}x | {thr:.1f}x |")
    empty = pct(results[("empty GET", 1, "mlops")]["lat"], 0.5) * 1000
    print("\nin-process, per request (median ms):")
    for k in floor:
        print(f"  {k}: 1 row {floor[k]:.3f}, 100 rows {floor100[k]:.3f}")
    for rows, fl in ((1, floor), (100, floor100)):
        key = f"{rows} row{'s' if rows > 1 else ''}"
        p50 = pct(results[(key, 1, "mlops")]["lat"], 0.5) * 1000
        work = fl["mlops parse+validate+predict"]
        bottom = empty + work
        print(
            f"floor ({rows} row): empty GET {empty:.3f} + in-process {work:.3f}"
            f" = {bottom:.3f} ms; mlops p50 {p50:.3f} ms = floor + {p50 - bottom:.3f} ms"
            f" ({p50 / bottom:.2f}x)"
        )


if __name__ == "__main__":
    main()

"""Hostile bodies against `mlops serve`: how long one 16 MB body takes to be refused, how long a
small request waits meanwhile, memory, and whether slow clients block a normal request.

Reproduce:

    .venv/bin/python benchmarks/serve_hostile_bodies.py            # ~1 min

A real `mlops serve --bundle` process (the penguin classifier) on 127.0.0.1. For each hostile body
(16 MB CSV, 16 MB JSON `dataframe_split`, 16 MB JSON records, a 100,000-deep nested `/feedback`
label), one thread sends it while another sends one-row predictions one after another; printed:
the big request's status and seconds, the small requests' worst and median latency while it was
in flight, and the server's RSS (idle, and its high-water mark VmHWM at the end). Then 600
connections each send half a request and stall, and one normal request is timed.
"""

from __future__ import annotations

import http.client
import json
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.serve_helpers import ROW, build_bundle, free_port, start_cli_server, stop

LIMIT = 16 * 1024 * 1024 - 1024


def status_kb(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def post(port: int, path: str, body: bytes, ctype: str, timeout: float = 120) -> tuple[int, float]:
    t0 = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    conn.request("POST", path, body=body, headers={"content-type": ctype})
    resp = conn.getresponse()
    resp.read()
    conn.close()
    return resp.status, time.perf_counter() - t0


def bodies() -> dict[str, tuple[str, bytes, str]]:
    cols = list(ROW)
    line = ",".join(str(ROW[c]) for c in cols) + "\n"
    csv = (",".join(cols) + "\n").encode() + line.encode() * ((LIMIT - 200) // len(line))
    row = json.dumps([ROW[c] for c in cols])
    n = (LIMIT - 200) // (len(row) + 1)
    rows = ",".join([row] * n)
    split = f'{{"dataframe_split":{{"columns":{json.dumps(cols)},"data":[{rows}]}}}}'
    rec = json.dumps(ROW)
    m = (LIMIT - 200) // (len(rec) + 1)
    records = "[" + ",".join([rec] * m) + "]"
    deep = '{"request_id":"x","label":' + "[" * 100_000 + "]" * 100_000 + "}"
    return {
        "csv 16 MB": ("/invocations", csv, "text/csv"),
        "json split 16 MB": ("/invocations", split.encode(), "application/json"),
        "json records 16 MB": ("/predict", records.encode(), "application/json"),
        "feedback nested 100k": ("/feedback", deep.encode(), "application/json"),
    }


def measure(port: int, pid: int) -> None:
    small = json.dumps(ROW).encode()
    for _ in range(20):
        post(port, "/predict", small, "application/json")
    print(f"idle RSS {status_kb(pid, 'VmRSS') / 1024:.0f} MB")
    for name, (path, body, ctype) in bodies().items():
        result: dict = {}

        def big(path=path, body=body, ctype=ctype, result=result) -> None:
            result["status"], result["seconds"] = post(port, path, body, ctype)

        th = threading.Thread(target=big)
        th.start()
        time.sleep(0.05)
        lat = []
        while th.is_alive():
            lat.append(post(port, "/predict", small, "application/json")[1])
        th.join()
        worst = max(lat) if lat else float("nan")
        med = statistics.median(lat) if lat else float("nan")
        print(
            f"{name:22} {len(body) / 1e6:5.1f} MB -> {result['status']} in "
            f"{result['seconds']:.2f} s;"
            f" {len(lat)} small requests meanwhile: worst {worst * 1000:.0f} ms, median "
            f"{med * 1000:.1f} ms; VmHWM {status_kb(pid, 'VmHWM') / 1024:.0f} MB"
        )
    socks = []
    for _ in range(600):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(b"POST /predict HTTP/1.1\r\nhost: x\r\ncontent-length: 1000\r\n\r\n{")
        socks.append(s)
    time.sleep(1)
    status, sec = post(port, "/predict", small, "application/json", timeout=30)
    print(f"600 stalled clients: a normal request -> {status} in {sec * 1000:.0f} ms")
    t0 = time.time()
    closed = 0
    for s in socks:
        s.settimeout(max(0.01, 60 - (time.time() - t0)))
        try:
            if s.recv(1024) is not None:
                closed += 1
        except OSError:
            pass
    print(f"stalled clients answered or closed by the server within 60 s: {closed} of 600")
    for s in socks:
        s.close()


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        bundle = build_bundle(Path(tmp) / "bundle")
        port = free_port()
        proc = start_cli_server(["--bundle", str(bundle), "--no-log"], Path(tmp), port)
        try:
            measure(port, proc.pid)
        finally:
            stop(proc)


if __name__ == "__main__":
    main()

"""Helpers for the serving tests: a real penguin bundle without DVC, servers on 127.0.0.1."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

FEATURES = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g", "island", "sex"]
ROW = {
    "bill_length_mm": 39.1,
    "bill_depth_mm": 18.7,
    "flipper_length_mm": 181.0,
    "body_mass_g": 3750.0,
    "island": "Torgersen",
    "sex": "male",
}


def penguins():
    """The Palmer Penguins frame (shipped offline by the palmerpenguins package)."""
    from palmerpenguins import load_penguins

    return load_penguins().dropna(subset=["species"]).reset_index(drop=True)


def bundle_contents(
    pipe, df, numeric: list[str], categorical: list[str], model: bytes, commit: str
) -> tuple[dict[str, bytes], dict]:
    """The files and metadata of a bundle of `pipe`, fitted on the penguins frame `df`."""
    from mlops.data.profile import profile_frame
    from mlops.stages.train import input_schema

    files = {
        "model.skops": model,
        "schema.json": json.dumps(input_schema(df, numeric, categorical)).encode(),
        "reference.json": json.dumps(
            profile_frame(df[[*numeric, *categorical, "species"]])
        ).encode(),
    }
    meta = {
        "name": "penguins-classifier",
        "task": "classification",
        "target": "species",
        "features": numeric + categorical,
        "classes": [str(c) for c in pipe.classes_],
        "git": {"commit": commit, "dirty": False},
    }
    return files, meta


def build_bundle(dest: Path, C: float = 1.0, commit: str = "0" * 40) -> Path:
    """Fit the example project's pipeline on the penguins and write a real bundle (~1 s)."""
    import skops.io as sio
    from sklearn.linear_model import LogisticRegression

    from mlops.bundle import write_bundle
    from mlops.stages.train import build_pipeline, feature_columns

    df = penguins()
    numeric, categorical = feature_columns(df, "species", ["year"])
    pipe = build_pipeline(numeric, categorical, LogisticRegression(C=C, max_iter=1000))
    pipe.fit(df[numeric + categorical], df["species"])
    files, meta = bundle_contents(pipe, df, numeric, categorical, sio.dumps(pipe), commit)
    meta["params"] = {"train": {"C": C}}
    write_bundle(dest, files, meta)
    return dest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ThreadServer:
    """The real ASGI app under a real uvicorn server, in a thread of the test process."""

    def __init__(self, config: Any) -> None:
        import uvicorn

        from mlops.serve.app import create_app
        from mlops.serve.service import Service

        self.service = Service(config)
        self.service.load_initial()
        app = create_app(self.service)
        cfg = uvicorn.Config(
            app, host="127.0.0.1", port=0, log_level="warning", lifespan="on", access_log=False
        )
        self.server = uvicorn.Server(cfg)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.time() + 30
        while not self.server.started:
            if time.time() > deadline or not self.thread.is_alive():
                raise RuntimeError("server did not start")
            time.sleep(0.02)
        self.port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


def start_cli_server(args: list[str], cwd: Path, port: int) -> subprocess.Popen:
    """`mlops serve ARGS --port PORT` as a child process; returns once /ready answers 200."""
    import httpx

    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlops", "serve", *args, "--port", str(port)],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group: a failed start takes its workers along
    )
    deadline = time.time() + 180  # a readiness wait, not a timing assertion (loaded CI machines)
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"mlops serve exited {proc.returncode}: {proc.stdout.read()}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/ready", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    _kill_group(proc)
    raise RuntimeError("mlops serve did not become ready")


def _kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL the server and the workers it started (they outlive a killed parent)."""
    import signal

    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def stop(proc: subprocess.Popen) -> str:
    """Stop a child server with SIGTERM (as a supervisor would); return its output."""
    proc.terminate()
    try:
        out, _ = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        out, _ = proc.communicate()
    return out or ""


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")

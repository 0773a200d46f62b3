"""Run `mlops` as a separate process: exit code, output and the child's own peak memory."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

# `python -m mlops` that writes its own peak RSS at exit. ru_maxrss would not do: Linux carries
# the forking parent's peak (pytest's, with everything it imported) into the child's figure.
_MEASURED = (
    "import atexit, os, sys\n"
    "def _peak():\n"
    "    for line in open('/proc/self/status'):\n"
    "        if line.startswith('VmHWM:'):\n"
    "            open(os.environ['MLOPS_TEST_PEAK'], 'w').write(line.split()[1])\n"
    "atexit.register(_peak)\n"
    "from mlops.cli import main\n"
    "sys.argv[0] = 'mlops'\n"
    "main()\n"
)


@dataclass
class Finished:
    code: int
    out: str
    err: str
    seconds: float
    peak_mb: float  # peak resident memory of that process alone (its VmHWM at exit)

    @property
    def text(self) -> str:
        return self.out + self.err


def mlops(
    args: list[str], cwd: Path, *, env: dict[str, str] | None = None, limit: float = 120
) -> Finished:
    """`python -m mlops ARGS` in `cwd`; killed, and the test failed, after `limit` seconds
    (a bound against hanging, not a timing assertion)."""
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="mlops-out-") as tmp:
        out_path, err_path = Path(tmp) / "out", Path(tmp) / "err"
        peak_path = Path(tmp) / "peak"
        with open(out_path, "w") as out, open(err_path, "w") as err:
            proc = subprocess.Popen(
                [sys.executable, "-c", _MEASURED, *args],
                cwd=cwd,
                env={**os.environ, **(env or {}), "MLOPS_TEST_PEAK": str(peak_path)},
                stdout=out,
                stderr=err,
            )
        try:
            proc.wait(timeout=limit)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise AssertionError(f"mlops {' '.join(args)} still running after {limit}s") from None
        peak = int(peak_path.read_text()) / 1024 if peak_path.exists() else float("nan")
        return Finished(
            proc.returncode,
            out_path.read_text(),
            err_path.read_text(),
            time.monotonic() - start,
            peak,
        )


def start(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    """`python -m mlops ARGS` started in the background, output captured as text."""
    return subprocess.Popen(
        [sys.executable, "-m", "mlops", *args],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )

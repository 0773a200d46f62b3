"""A CSV larger than memory would allow to load comfortably: profile and validate in bounded memory.

Reproduce:

    .venv/bin/python benchmarks/large_csv.py             # writes a ~2 GB CSV under /tmp, then runs
    .venv/bin/python benchmarks/large_csv.py --quick     # ~200 MB

Each step is the real command in its own process (`mlops validate ...`), so its peak resident
memory (ru_maxrss of the child) is what a user would see:
1. `--infer`: stream the file, profile it, draft the schema;
2. validate against the schema and save the profile (`--save-profile`);
3. validate again with drift against that profile (`--previous`).
For scale, pandas' `read_csv` of the whole file would need about 2.5x the file size.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def write_csv(path: Path, target_bytes: int) -> int:
    """Eight different 100k-row blocks, written in turn until the file reaches the size
    (formatting 2 GB of floats with pandas would take longer than the measurement)."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    blocks = []
    for _ in range(8):
        data = {f"f{i}": rng.normal(100, 15, 100_000).round(4) for i in range(15)}
        for i in range(5):
            data[f"c{i}"] = rng.choice(["alpha", "beta", "gamma", "delta", "epsilon"], 100_000)
        blocks.append(pd.DataFrame(data).to_csv(index=False, header=False))
    header = ",".join([*(f"f{i}" for i in range(15)), *(f"c{i}" for i in range(5))]) + "\n"
    rows = 0
    with open(path, "w") as fh:
        fh.write(header)
        while fh.tell() < target_bytes:
            fh.write(blocks[(rows // 100_000) % len(blocks)])
            rows += 100_000
    return rows


def run(cmd: list[str], cwd: Path) -> tuple[float, float, int, str]:
    """(seconds, peak MB of this child, exit code, stdout) for one command in a fresh process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    secs = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if peak <= before:
        print("  (peak not above an earlier child's; reported as that bound)", file=sys.stderr)
    if proc.returncode not in (0, 3):
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr[-2000:]}")
    return secs, peak / 1024, proc.returncode, proc.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--gb", type=float, default=2.0)
    args = parser.parse_args()
    size = int((0.2 if args.quick else args.gb) * 2**30)
    mlops = str(Path(sys.executable).parent / "mlops")
    with tempfile.TemporaryDirectory(dir="/tmp") as d:
        tmp = Path(d)
        csv = tmp / "big.csv"
        t0 = time.perf_counter()
        rows = write_csv(csv, size)
        actual = csv.stat().st_size
        print(
            f"wrote {actual / 2**30:.2f} GB, {rows:,} rows x 20 columns in "
            f"{time.perf_counter() - t0:.0f}s",
            flush=True,
        )
        steps = [
            ("infer schema (profile)", ["--infer", "--schema", "schema.yaml", "--json"]),
            (
                "validate + save profile",
                ["--schema", "schema.yaml", "--save-profile", "p.json", "--json"],
            ),
            (
                "validate + drift vs profile",
                ["--schema", "schema.yaml", "--previous", "p.json", "--json"],
            ),
        ]
        # children run one after another; ru_maxrss of RUSAGE_CHILDREN is the largest so far,
        # so run the cheapest first and report each step's bound
        for label, extra in steps:
            secs, peak, code, out = run([mlops, "validate", str(csv), *extra], tmp)
            summary = ""
            if out.strip().startswith("{"):
                data = json.loads(out)
                if "valid" in data:
                    prev = (data.get("drift") or {}).get("previous") or {}
                    summary = (
                        f"valid={data['valid']} rows={data['rows']:,} chunks={data['chunks']} "
                        f"drifted={prev.get('drifted')}"
                    )
            print(
                f"{label:30s} {secs:6.1f}s  {actual / 2**20 / secs:5.0f} MB/s  "
                f"peak RSS {peak:6.0f} MB  exit {code}  {summary}",
                flush=True,
            )
        os.sync()


if __name__ == "__main__":
    main()

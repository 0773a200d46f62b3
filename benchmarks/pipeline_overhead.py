"""Pipeline overhead of mlops against DVC, side by side in one run (issue 2).

Reproduce:  .venv/bin/python benchmarks/pipeline_overhead.py [--quick] [--write]

Measures, on a fresh `mlops init` project (Palmer Penguins, five built-in stages):
  1. start-up: `mlops --help` against `dvc --version`;
  2. no-op run: `mlops run` against `dvc repro` when nothing changed;
  3. forced run: `mlops run --force` against running the five stage commands directly.
Runs alternate between the two tools so load on the machine hits both alike; medians are
reported, and ratios are what to compare across days. `--write` replaces this benchmark's section
of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
STAGES = ["ingest", "validate", "split", "train", "evaluate"]
BEGIN, END = "<!-- pipeline_overhead:begin -->", "<!-- pipeline_overhead:end -->"


def env() -> dict[str, str]:
    return dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}", DVC_NO_ANALYTICS="1")


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def timed(cmd: list[str], cwd: Path) -> tuple[float, float]:
    """Wall time and CPU time (user + system, the process and its children) of one command."""
    c0, t0 = _cpu(), time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env(), capture_output=True, text=True)
    elapsed, cpu = time.perf_counter() - t0, _cpu() - c0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    return elapsed, cpu


def pair(a: list[list[str]], b: list[list[str]], cwd: Path, n: int) -> tuple[list, list]:
    """n alternating rounds; each entry is (wall, cpu) summed over the commands of one side."""
    ta, tb = [], []
    for _ in range(n):
        for cmds, out in ((a, ta), (b, tb)):
            runs = [timed(c, cwd) for c in cmds]
            out.append((sum(w for w, _ in runs), sum(c for _, c in runs)))
    return ta, tb


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer repetitions")
    ap.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    args = ap.parse_args()
    reps = (5, 5, 1) if args.quick else (21, 15, 3)

    work = Path(tempfile.mkdtemp(prefix="mlops-bench-"))
    proj = work / "project"
    mlops = str(BIN / "mlops")
    dvc = str(BIN / "dvc")
    timed([mlops, "init", str(proj)], work)
    timed([mlops, "run"], proj)
    timed([mlops, "run"], proj)  # settles the no-op stamp

    results = {}
    a, b = pair([[mlops, "--help"]], [[dvc, "--version"]], proj, reps[0])
    results["startup"] = {"mlops --help": a, "dvc --version": b}
    a, b = pair([[mlops, "run"]], [[dvc, "repro"]], proj, reps[1])
    results["noop"] = {"mlops run (no-op)": a, "dvc repro (no-op)": b}
    direct = [[str(BIN / "python"), "-m", "mlops.stages", s] for s in STAGES]
    a, b = pair([[mlops, "run", "--force"]], direct, proj, reps[2])
    results["force"] = {"mlops run --force": a, "stage commands run directly": b}
    shutil.rmtree(work, ignore_errors=True)

    rows = []
    for key, pair_ in results.items():
        (na, va), (nb, vb) = pair_.items()
        wa, wb = statistics.median(w for w, _ in va), statistics.median(w for w, _ in vb)
        ca, cb = statistics.median(c for _, c in va), statistics.median(c for _, c in vb)
        rows.append((key, na, wa, ca, nb, wb, cb))
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    lines = [
        BEGIN,
        "## Pipeline overhead (issue 2)",
        "",
        "`.venv/bin/python benchmarks/pipeline_overhead.py --write` on a fresh `mlops init` "
        f"project ({machine}; {time.strftime('%Y-%m-%d')}). Medians of alternating runs; "
        f"repetitions: start-up {reps[0]}, no-op {reps[1]}, forced {reps[2]}.",
        "",
        "| measure | mlops | wall s | cpu s | peer | wall s | cpu s | ratio wall | ratio cpu "
        "| target (ratio) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    targets = {"startup": "≤ 1, and < 0.2 s", "noop": "≤ 0.5", "force": "< 1.10"}
    for key, na, wa, ca, nb, wb, cb in rows:
        lines.append(
            f"| {key} | {na} | {wa:.3f} | {ca:.3f} | {nb} | {wb:.3f} | {cb:.3f} "
            f"| {wa / wb:.2f} | {ca / cb:.2f} | {targets[key]} |"
        )
    lines += [
        "",
        'The no-op check proves "nothing changed" from file signatures without starting DVC '
        "(see docs/architecture.md); forced runs go through DVC, which hashes and caches every "
        "output. CPU time (user + system of the process and its children) is what the machine's "
        "load disturbs least; wall time is what a user waits.",
        END,
    ]
    section = "\n".join(lines)
    print(section)
    print(json.dumps({k: {n: v for n, v in d.items()} for k, d in results.items()}))
    if args.write:
        doc = ROOT / "docs" / "benchmarks.md"
        text = doc.read_text() if doc.exists() else "# Benchmarks\n"
        if BEGIN in text:
            head, rest = text.split(BEGIN, 1)
            text = head + section + rest.split(END, 1)[1]
        else:
            text = text.rstrip() + "\n\n" + section + "\n"
        doc.write_text(text)


if __name__ == "__main__":
    main()

"""A forced run with the runner the command starts itself (issue 22), against no runner.

Reproduce (from the repository root; the machine is shared, so run it niced):

    nice -n 10 .venv/bin/python benchmarks/cold_runner.py --rounds 2
    nice -n 10 .venv/bin/python benchmarks/cold_runner.py --rounds 2 --other /tmp/old-mlops

One project made by `mlops init` (five built-in stages) after one committed run; `mlops run
--force --json` without a runner (`MLOPS_RUNNER=0`: today's behaviour) and with the runner the
command starts (cold: its imports are part of the time), alternating the order each round.
`--other DIR` adds a third variant: the same command with `PYTHONPATH=DIR`, a directory holding
another version's `mlops/` package (e.g. `git archive <commit> mlops | tar -x -C DIR`), to compare
two versions under the same load. After every run the outs hashes in dvc.lock are compared with
the first one's. CPU is user + system time of the command and its children (the runner is one).
The kept (warm) runner, `dvc repro` and the sweep: `benchmarks/warm_stages.py`.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

BIN = Path(sys.executable).parent
ENV = dict(os.environ, PATH=str(BIN) + os.pathsep + os.environ["PATH"], DVC_NO_ANALYTICS="1")
OFF = {"MLOPS_RUNNER": "0"}


def sh(cwd: Path, *args: str, env: dict | None = None) -> str:
    proc = subprocess.run(args, cwd=cwd, env={**ENV, **(env or {})}, capture_output=True, text=True)
    if proc.returncode not in (0, 4):  # 4: a gate failed, still a finished run
        raise SystemExit(f"{' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return proc.stdout


def timed(cwd: Path, *args: str, env: dict) -> tuple[float, float, str]:
    """Wall seconds, CPU seconds (user + system, children included) and stdout."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    out = sh(cwd, *args, env=env)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), out


def outs(root: Path) -> dict[str, str]:
    data = yaml.safe_load((root / "dvc.lock").read_text())
    return {
        f"{n}:{o['path']}": o["md5"] for n, s in data["stages"].items() for o in s.get("outs", [])
    }


def reset(root: Path) -> None:
    sh(root, "git", "reset", "-q", "--hard")
    sh(root, str(BIN / "dvc"), "checkout", "--force")
    sh(root, "git", "clean", "-qfd")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2, help="rounds (2)")
    parser.add_argument("--other", default=None, help="PYTHONPATH of another mlops version")
    args = parser.parse_args()
    variants = {"no runner (today)": OFF, "runner started by the command": {}}
    if args.other:
        variants[f"runner started by the command, PYTHONPATH={args.other}"] = {
            "PYTHONPATH": args.other
        }
    print(f"load average at start: {os.getloadavg()}; CPUs: {os.cpu_count()}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        home.mkdir()
        (home / ".gitconfig").write_text("[user]\n\tname = Bench\n\temail = b@example.com\n")
        ENV.update(HOME=str(home), GIT_CONFIG_NOSYSTEM="1", MLOPS_RUNNER_DIR=f"{tmp}/r")
        root = Path(tmp) / "project"
        mlops = str(BIN / "mlops")
        sh(Path(tmp), mlops, "init", str(root))
        sh(root, "git", "add", "-A")
        sh(root, "git", "commit", "-qm", "start")
        sh(root, mlops, "run", env=OFF)
        sh(root, "git", "add", "-A")
        sh(root, "git", "commit", "-qm", "first run")
        rows: dict[str, list[tuple[float, float, float]]] = {k: [] for k in variants}
        reference = None
        for i in range(args.rounds):
            for name in list(variants)[:: 1 if i % 2 == 0 else -1]:
                wall, cpu, out = timed(root, mlops, "run", "--force", "--json", env=variants[name])
                first = json.loads(out)["stages"][0]["seconds"]
                rows[name].append((wall, cpu, first))
                got = outs(root)
                reference = reference or got
                if got != reference:
                    raise SystemExit(f"outputs differ: {set(got.items()) ^ set(reference.items())}")
                load = os.getloadavg()[0]
                print(f"  round {i + 1}: {name}: {wall:.2f}s wall, {cpu:.2f}s CPU, load {load:.1f}")
                reset(root)
    base = statistics.median(w for w, _, _ in rows["no runner (today)"])
    base_cpu = statistics.median(c for _, c, _ in rows["no runner (today)"])
    print(
        "\n| `mlops run --force` | median wall | median CPU | × today (wall) | × today (CPU) "
        "| first stage (ingest) |"
    )
    print("|---|---|---|---|---|---|")
    for name, got in rows.items():
        w = statistics.median(r[0] for r in got)
        c = statistics.median(r[1] for r in got)
        f = statistics.median(r[2] for r in got)
        print(
            f"| {name} | {w:.2f} s | {c:.2f} s | {w / base:.2f} | {c / base_cpu:.2f} | {f:.2f} s |"
        )
    print(f"outs identical in all runs; load average at end: {os.getloadavg()}")


if __name__ == "__main__":
    main()

"""The warm runner (issue 22): forced runs and a sweep of experiments, with and without it.

Reproduce (from the repository root, after `bash scripts/test.sh` made .venv; the machine is
shared, so run it niced):

    nice -n 10 .venv/bin/python benchmarks/warm_stages.py                 # 2 rounds, 20-value sweep
    nice -n 10 .venv/bin/python benchmarks/warm_stages.py --rounds 1 --baseline-sweep 5
    nice -n 10 .venv/bin/python benchmarks/warm_stages.py --no-forced --baseline-sweep 5  # sweeps

One project made by `mlops init` (Palmer Penguins, logistic regression, five built-in stages),
after one committed `mlops run`. Side by side in one run, alternating the order each round:

- `mlops run --force` without a runner (`MLOPS_RUNNER=0`: today's behaviour), with the runner the
  command starts for itself (cold: its imports are part of the time), with a runner kept by
  `mlops runner start` (warm: timed once its imports are done), and `dvc repro --force` of the
  same dvc.yaml (no runner);
- after every forced run, the outs hashes in dvc.lock are compared with the first one's;
- `mlops exp run -S train.C=v1,...,vN` as a user runs it (one command, N experiments, its
  runner, the default `--jobs 1`), the same with `--jobs 2` (two at once in worker processes),
  against today's `MLOPS_RUNNER=0 mlops exp run --jobs 1`,
  `dvc exp run -S train.C=v` one command per value, and `dvc exp run --queue` per value then
  `dvc exp run --run-all --jobs 2` (`--no-queue` skips it), the last three over the first
  `--baseline-sweep` values (per experiment: wall time / experiments). Every mlops sweep's
  metrics and recorded outs hashes must equal the sequential sweep's for the values both ran,
  and its records must start in sweep order.

CPU is user + system time of the command and its children (a runner the command started is its
child; a kept runner is not, so its CPU is not counted). The load average is printed.
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


def sh(cwd: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    proc = subprocess.run(args, cwd=cwd, env={**ENV, **(env or {})}, capture_output=True, text=True)
    if proc.returncode not in (0, 4):  # 4: a gate failed, still a finished run
        raise SystemExit(f"{' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return proc


def timed(cwd: Path, *args: str, env: dict | None = None) -> tuple[float, float, str]:
    """Wall seconds, CPU seconds (user + system, children included) and stdout."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    out = sh(cwd, *args, env=env).stdout
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


def warm_up(root: Path, limit: float = 300.0) -> None:
    """Wait until the kept runner has finished its imports (a warm runner is what is timed)."""
    end = time.monotonic() + limit
    while time.monotonic() < end:
        out = sh(root, str(BIN / "mlops"), "runner", "status", "--json").stdout
        if json.loads(out).get("preloaded"):
            return
        time.sleep(0.5)


def forced_runs(root: Path, rounds: int) -> None:
    mlops = str(BIN / "mlops")
    run = [mlops, "run", "--force", "--json"]
    variants = {
        "mlops run --force, no runner (today)": (run, OFF),
        "mlops run --force, runner started by the command": (run, {}),
        "mlops run --force, kept runner (warm)": (run, {}),
        "dvc repro --force (no runner)": ([str(BIN / "dvc"), "repro", "--force"], OFF),
    }
    wall: dict[str, list[float]] = {k: [] for k in variants}
    cpu: dict[str, list[float]] = {k: [] for k in variants}
    first_stage: dict[str, list[float]] = {k: [] for k in variants}
    reference = None
    for i in range(rounds):
        order = list(variants)[:: 1 if i % 2 == 0 else -1]
        for name in order:
            args, env = variants[name]
            kept = "kept" in name
            if kept:
                sh(root, str(BIN / "mlops"), "runner", "start")
                warm_up(root)
            secs, used, out = timed(root, *args, env=env)
            if kept:
                sh(root, str(BIN / "mlops"), "runner", "stop")
            wall[name].append(secs)
            cpu[name].append(used)
            if out.strip().startswith("{"):
                stages = json.loads(out)["stages"]
                first_stage[name].append(stages[0]["seconds"])
            got = outs(root)
            reference = reference or got
            same = "same outs" if got == reference else "OUTS DIFFER"
            print(f"  round {i + 1}: {name}: {secs:.2f}s wall, {used:.2f}s CPU; {same}", flush=True)
            if got != reference:
                raise SystemExit(f"outputs differ: {set(got.items()) ^ set(reference.items())}")
            reset(root)
    base = statistics.median(wall["mlops run --force, no runner (today)"])
    base_cpu = statistics.median(cpu["mlops run --force, no runner (today)"])
    print("\n| command | median wall | median CPU | × today (wall) | first stage (ingest) |")
    print("|---|---|---|---|---|")
    for name in variants:
        w, c = statistics.median(wall[name]), statistics.median(cpu[name])
        fs = f"{statistics.median(first_stage[name]):.2f} s" if first_stage[name] else "-"
        print(f"| {name} | {w:.2f} s | {c:.2f} s | {w / base:.2f} | {fs} |")
    print(f"(today's CPU: {base_cpu:.2f} s)")


def _exp_results(root: Path, out: str) -> dict[float, tuple[dict, dict, str]]:
    """train.C -> (metrics, outs hashes as recorded, record id) of one `mlops exp run --json`."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from mlops.pipeline.records import RunStore

    store = RunStore(root)
    got = {}
    for r in json.loads(out):
        got[r["overrides"]["train.C"]] = (r["metrics"], store.get(r["run_id"]).outs, r["run_id"])
    return got


def _in_order(root: Path, ids: list[str]) -> bool:
    """The records of a sweep started in sweep order (as `mlops runs list` sorts them)."""
    from mlops.pipeline.records import RunStore

    store = RunStore(root)
    started = [store.get(i).started for i in ids]
    return started == sorted(started)


def sweep(root: Path, values: list[float], baseline: int, queue: bool) -> None:
    mlops = str(BIN / "mlops")
    dvc = str(BIN / "dvc")
    setting = "train.C=" + ",".join(f"{v:g}" for v in values)
    few = "train.C=" + ",".join(f"{v:g}" for v in values[:baseline])
    rows = []
    results = {}
    runs = {
        "mlops exp run --jobs 2, runner": ([setting, "--jobs", "2"], len(values), {}),
        "mlops exp run (default --jobs 1), runner": ([setting], len(values), {}),
        "mlops exp run --jobs 1, no runner (today)": ([few, "--jobs", "1"], baseline, OFF),
    }
    for name, (args, n, env) in runs.items():
        load = os.getloadavg()[0]
        secs, used, out = timed(root, mlops, "exp", "run", "-S", *args, "--json", env=env)
        rows.append((name, n, secs, used, load))
        results[name] = _exp_results(root, out)
        ids = [rid for _, _, rid in results[name].values()]
        print(
            f"  {name}: {secs:.2f}s wall, {used:.2f}s CPU, load {load:.1f}; "
            f"records in sweep order: {_in_order(root, ids)}",
            flush=True,
        )
    total_w = total_c = 0.0
    load = os.getloadavg()[0]
    for v in values[:baseline]:
        w, c, _ = timed(root, dvc, "exp", "run", "-S", f"train.C={v:g}", env=OFF)
        total_w, total_c = total_w + w, total_c + c
        reset(root)
    name = "dvc exp run (no runner), one command per value"
    rows.append((name, baseline, total_w, total_c, load))
    if queue:
        load = os.getloadavg()[0]
        t0 = time.perf_counter()
        for v in values[:baseline]:
            sh(root, dvc, "exp", "run", "--queue", "-S", f"train.C={v:g}", env=OFF)
        w, c, _ = timed(root, dvc, "exp", "run", "--run-all", "--jobs", "2", env=OFF)
        w = time.perf_counter() - t0
        rows.append(("dvc exp run --queue ×N, then --run-all --jobs 2¹", baseline, w, c, load))
        reset(root)
    today = rows[2][2] / rows[2][1]
    print("\n| command | experiments | wall per experiment | CPU per experiment | × today | load |")
    print("|---|---|---|---|---|---|")
    for name, n, w, c, load in rows:
        per = w / n
        print(f"| {name} | {n} | {per:.2f} s | {c / n:.2f} s | {per / today:.2f} | {load:.1f} |")
    if queue:
        print("¹ queue workers run detached: their CPU is not counted")
    ref = results["mlops exp run (default --jobs 1), runner"]
    for name, got in results.items():
        shared = [c for c in got if c in ref]
        same = all(got[c][:2] == ref[c][:2] for c in shared)
        print(
            f"{name}: metrics and outs hashes equal to the sequential sweep's "
            f"({len(shared)} values): {same}"
        )
        if not same:
            raise SystemExit(f"{name}: results differ from the sequential sweep")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2, help="rounds of forced runs (2)")
    parser.add_argument("--sweep", type=int, default=20, help="values of train.C (20)")
    parser.add_argument(
        "--baseline-sweep", type=int, default=20, help="values run without the runner (20)"
    )
    parser.add_argument("--no-forced", action="store_true", help="time only the sweeps")
    parser.add_argument(
        "--no-queue", action="store_true", help="skip `dvc exp run --queue` + `--run-all`"
    )
    args = parser.parse_args()
    print(f"load average at start: {os.getloadavg()}; CPUs: {os.cpu_count()}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        home.mkdir()
        (home / ".gitconfig").write_text("[user]\n\tname = Bench\n\temail = b@example.com\n")
        ENV.update(HOME=str(home), GIT_CONFIG_NOSYSTEM="1", MLOPS_RUNNER_DIR=str(Path(tmp) / "r"))
        root = Path(tmp) / "project"
        sh(Path(tmp), str(BIN / "mlops"), "init", str(root))
        sh(root, "git", "add", "-A")
        sh(root, "git", "commit", "-qm", "start")
        sh(root, str(BIN / "mlops"), "run", env=OFF)
        sh(root, "git", "add", "-A")
        sh(root, "git", "commit", "-qm", "first run")
        if not args.no_forced:
            forced_runs(root, args.rounds)
        values = [round(0.05 * (i + 1), 2) for i in range(args.sweep)]
        sweep(root, values, min(args.baseline_sweep, args.sweep), not args.no_queue)
    print(f"load average at end: {os.getloadavg()}")


if __name__ == "__main__":
    main()

"""One experiment with a changed param: `mlops exp run` against `dvc exp run`, side by side.

Reproduce (from the repository root, after `bash scripts/test.sh` made .venv):

    .venv/bin/python benchmarks/experiments.py            # 5 rounds
    .venv/bin/python benchmarks/experiments.py --quick    # 1 round

Both tools run the same generated dvc.yaml of a project made by `mlops init` (Palmer Penguins,
logistic regression), after one committed `mlops run`; each round sets `train.C` to a new value
(so train and evaluate rerun), alternating which tool goes first. DVC is the peer and is already
installed with mlops. Also checked: whether the command left the workspace as it was (git status
and the bytes of params.yaml and dvc.lock); `dvc exp run` applies the experiment to the
workspace by design, so after each of its rounds the workspace is reset (not timed).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent
ENV = dict(os.environ, PATH=str(BIN) + os.pathsep + os.environ["PATH"], DVC_NO_ANALYTICS="1")


def sh(cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(args, cwd=cwd, env=ENV, capture_output=True, text=True)
    if check and proc.returncode not in (0, 4):  # 4: a gate failed, still a finished run
        raise SystemExit(f"{' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    return proc


def state(root: Path) -> tuple[str, bytes, bytes]:
    status = sh(root, "git", "status", "--porcelain").stdout
    return status, (root / "params.yaml").read_bytes(), (root / "dvc.lock").read_bytes()


def timed(root: Path, *args: str) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user + system of the command and its children)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    sh(root, *args)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one round instead of five")
    args = parser.parse_args()
    rounds = 1 if args.quick else 5
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        home.mkdir()
        (home / ".gitconfig").write_text("[user]\n\tname = Bench\n\temail = b@example.com\n")
        ENV.update(HOME=str(home), GIT_CONFIG_NOSYSTEM="1")
        root = Path(tmp) / "project"
        sh(Path(tmp), str(BIN / "mlops"), "init", str(root))
        sh(root, "git", "add", "-A")
        sh(root, "git", "commit", "-qm", "start")
        sh(root, str(BIN / "mlops"), "run")
        sh(root, "git", "add", "-A")
        sh(root, "git", "commit", "-qm", "first run")
        clean = state(root)
        times: dict[str, list[float]] = {"mlops exp run": [], "dvc exp run": []}
        cpu: dict[str, list[float]] = {"mlops exp run": [], "dvc exp run": []}
        untouched = {"mlops exp run": True, "dvc exp run": True}
        for i in range(rounds):
            c = f"train.C={0.05 * (i + 2):.2f}"
            order = ["mlops exp run", "dvc exp run"][:: 1 if i % 2 == 0 else -1]
            for tool in order:
                if tool == "mlops exp run":
                    secs, used = timed(root, str(BIN / "mlops"), "exp", "run", "-S", c, "--json")
                else:
                    secs, used = timed(root, str(BIN / "dvc"), "exp", "run", "-S", c)
                times[tool].append(secs)
                cpu[tool].append(used)
                if state(root) != clean:
                    untouched[tool] = False
                    sh(root, "git", "reset", "-q", "--hard")
                    sh(root, str(BIN / "dvc"), "checkout", "--force")
                    sh(root, "git", "clean", "-qfd")
                assert state(root) == clean
        mlops_s = statistics.median(times["mlops exp run"])
        dvc_s = statistics.median(times["dvc exp run"])
        mlops_cpu = statistics.median(cpu["mlops exp run"])
        dvc_cpu = statistics.median(cpu["dvc exp run"])
        print(f"rounds: {rounds}")
        for tool, values in times.items():
            print(
                f"{tool}: median wall {statistics.median(values):.2f}s "
                f"(all: {', '.join(f'{v:.2f}' for v in values)}), "
                f"median CPU {statistics.median(cpu[tool]):.2f}s; "
                f"workspace untouched: {'yes' if untouched[tool] else 'no'}"
            )
        print(f"ratio mlops/dvc: wall {mlops_s / dvc_s:.2f}, CPU {mlops_cpu / dvc_cpu:.2f}")


if __name__ == "__main__":
    main()

"""`mlops registry show` against `gto show` on a repository with 1,500 registry tags.

Reproduce (from the repository root, in the project's virtualenv, which has gto 1.10 with dvc):

    .venv/bin/python benchmarks/registry_show.py            # 7 runs of each, median
    .venv/bin/python benchmarks/registry_show.py --quick    # 3 runs of each

The repository is built with `git fast-import` (300 commits, 300 registrations, 1,200 stage
assignments over three stages, spread over five artifacts by default, distinct tagger
times). Both tools run as a user
runs them, in a fresh process (`mlops registry show --json`, `gto show --json`), alternately in
one loop so machine noise hits both alike; their JSON is checked to agree before timing.
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

BIN = Path(sys.executable).parent
NAME = "bench-model"
STAGES = ("staging", "production", "canary")


def build_repo(root: Path, versions: int = 300, assignments: int = 1200, models: int = 5) -> int:
    """A git repository whose tags are `versions` registrations and `assignments` stage tags,
    spread evenly over `models` artifacts (`bench-model`, `bench-model-2`, ...)."""
    subprocess.run(["git", "init", "-q", "-b", "main", str(root)], check=True)
    t0 = 1_700_000_000
    who = "Bench <bench@example.com>"
    lines: list[str] = []

    def data(text: str) -> None:
        raw = text.encode()
        lines.append(f"data {len(raw)}")
        lines.append(text)

    for i in range(1, versions + 1):
        lines.append("commit refs/heads/main")
        lines.append(f"mark :{i}")
        lines.append(f"committer {who} {t0 + i} +0000")
        data(f"train {i}\n")
        lines.append(f"M 644 inline model.txt\ndata {len(str(i))}\n{i}")
    tags = 0
    names = model_names(models)
    for i in range(1, versions + 1):
        name = names[i % models]
        version = f"v{i // 100}.{(i // 10) % 10}.{i % 10}"
        lines.append(f"tag {name}@{version}")
        lines.append(f"from :{i}")
        lines.append(f"tagger {who} {t0 + 10 * i} +0000")
        data(
            f"Registering artifact {name} version {version}\n\n"
            f"blessed: true\nmetrics: accuracy={0.9 + i / 10000:.4f}\n"
        )
        tags += 1
    for n in range(1, assignments + 1):
        i = min(versions, 1 + (n * versions) // assignments)
        i = max(m for m in range(1, i + 1) if m % models == n % models) if i >= models else i
        name = names[i % models]
        stage = STAGES[n % len(STAGES)]
        lines.append(f"tag {name}#{stage}#{n}")
        lines.append(f"from :{i}")
        lines.append(f"tagger {who} {t0 + 10 * versions + 10 * n} +0000")
        data(f"Assigning stage {stage} to artifact {name}\n")
        tags += 1
    stream = "\n".join(lines) + "\n"
    subprocess.run(
        ["git", "-C", str(root), "fast-import", "--quiet"], input=stream.encode(), check=True
    )
    subprocess.run(["git", "-C", str(root), "checkout", "-q", "main"], check=True)
    return tags


def model_names(models: int) -> list[str]:
    """The artifacts' names: `bench-model` first, as in the one-model repository."""
    return [NAME] + [f"{NAME}-{k}" for k in range(2, models + 1)]


def timed(cmd: list[str], cwd: Path) -> tuple[float, float, str]:
    """(wall seconds, CPU seconds of the process and its children, stdout)."""
    env = {**os.environ, "GTO_NO_ANALYTICS": "1", "DVC_NO_ANALYTICS": "1"}
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # as installed: both tools' bytecode is cached
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env)
    elapsed = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr}")
    return elapsed, cpu, proc.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 runs of each instead of 7")
    parser.add_argument("--models", type=int, default=5, help="artifacts the tags spread over")
    args = parser.parse_args()
    runs = 3 if args.quick else 7
    with tempfile.TemporaryDirectory(prefix="bench-registry-") as tmp:
        root = Path(tmp) / "repo"
        t = time.perf_counter()
        tags = build_repo(root, models=args.models)
        print(f"built a repository with {tags} registry tags in {time.perf_counter() - t:.1f}s")
        mlops_cmd = [str(BIN / "mlops"), "registry", "show", "--json"]
        gto_cmd = [str(BIN / "gto"), "show", "--json"]
        table_cmd = [str(BIN / "mlops"), "registry", "show"]
        ours = timed(mlops_cmd, root)[2]
        theirs = timed(gto_cmd, root)[2]
        ours_j, theirs_j = json.loads(ours), json.loads(theirs)
        keys = ("version", "stage", "registered", "active")
        names = model_names(args.models)
        same = sorted(ours_j) == sorted(theirs_j) == sorted(names) and all(
            {k: ours_j[n][k] for k in keys} == theirs_j[n] for n in names
        )
        print(f"same answer for {len(names)} models: {same} ({NAME}: {theirs_j.get(NAME)})")
        if not same:
            raise SystemExit("the two tools disagree; not timing")
        times: dict[str, list[tuple[float, float]]] = {"json": [], "table": [], "gto": []}
        for _ in range(runs):
            times["json"].append(timed(mlops_cmd, root)[:2])
            times["table"].append(timed(table_cmd, root)[:2])
            times["gto"].append(timed(gto_cmd, root)[:2])
        wall = {k: statistics.median(w for w, _ in v) for k, v in times.items()}
        cpu = {k: statistics.median(c for _, c in v) for k, v in times.items()}
        print(
            f"runs of each: {runs}; medians of whole processes; load average "
            f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
        )
        print(f"{'':28}{'wall':>8}{'cpu':>8}")
        for key, label in (
            ("json", "mlops registry show --json"),
            ("table", "mlops registry show"),
            ("gto", "gto show --json"),
        ):
            print(f"{label:28}{wall[key]:7.3f}s{cpu[key]:7.3f}s")
        print(
            f"gto / mlops (--json): {wall['gto'] / wall['json']:.1f}x wall, "
            f"{cpu['gto'] / cpu['json']:.1f}x cpu"
        )
        print(
            f"gto / mlops (table) : {wall['gto'] / wall['table']:.1f}x wall, "
            f"{cpu['gto'] / cpu['table']:.1f}x cpu"
        )


if __name__ == "__main__":
    main()

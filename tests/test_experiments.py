"""`mlops exp run/apply` and `mlops runs list/diff` on a real trained project."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from mlops.errors import ExitCode
from mlops.pipeline.records import RunStore
from tests.helpers import git, replace_in

pytestmark = pytest.mark.slow
SKIP = (".git", ".mlops", ".dvc/cache", ".dvc/tmp")


def snapshot(root: Path) -> dict[str, str]:
    """Every file of the workspace (but git's and mlops' own state) -> sha256."""
    out = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        if any(rel == s or rel.startswith(s + "/") for s in SKIP) or not p.is_file():
            continue
        out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def test_three_experiments_leave_workspace_and_are_listed(trained: Path, cli):
    before = snapshot(trained)
    status_before = git(trained, "status", "--porcelain")
    one = cli(
        ["exp", "run", "-S", "train.C=0.05", "-S", "train.max_iter=200", "--json"], cwd=trained
    )
    assert one.exit_code in (0, ExitCode.GATE_FAILED), one.output
    sweep = cli(["exp", "run", "-S", "train.C=0.3,3", "--json"], cwd=trained)
    assert sweep.exit_code in (0, ExitCode.GATE_FAILED), sweep.output
    runs = json.loads(one.output) + json.loads(sweep.output)
    assert [r["overrides"] for r in runs] == [
        {"train.C": 0.05, "train.max_iter": 200},
        {"train.C": 0.3},
        {"train.C": 3},
    ]
    # nothing in the workspace changed: params.yaml, dvc.lock, outputs, reports
    assert snapshot(trained) == before
    assert git(trained, "status", "--porcelain") == status_before
    assert git(trained, "worktree", "list").count("\n") == 0  # the scratch tree is gone

    ids = [r["run_id"] for r in runs]
    listed = cli(["runs", "list", "--sort", "metrics.accuracy"], cwd=trained)
    assert listed.exit_code == 0
    for run_id in ids:
        assert run_id in listed.output
    data = json.loads(
        cli(["runs", "list", "--sort", "metrics.accuracy", "--desc", "--json"], cwd=trained).output
    )
    accuracies = [r["metrics"]["accuracy"] for r in data if "accuracy" in r["metrics"]]
    assert accuracies == sorted(accuracies, reverse=True)
    records = {r.id: r for r in RunStore(trained).list(limit=None)}
    assert all(records[i].kind == "exp" for i in ids)
    assert records[ids[0]].params["train"]["C"] == 0.05
    assert records[ids[0]].params["train"]["max_iter"] == 200
    # each experiment's model bundle is in the project's DVC cache
    digest = records[ids[0]].outs["models/penguins-classifier"]
    assert (trained / ".dvc/cache/files/md5" / digest[:2] / digest[2:]).is_file()
    # filters: AND / OR on params and metrics
    low_c = json.loads(
        cli(
            ["runs", "list", "--where", "kind == exp and params.train.C < 1", "--json"], cwd=trained
        ).output
    )
    assert sorted(r["id"] for r in low_c) == sorted(ids[:2])
    either = json.loads(
        cli(
            ["runs", "list", "-w", "params.train.C == 3 or params.train.max_iter == 200", "--json"],
            cwd=trained,
        ).output
    )
    assert sorted(r["id"] for r in either) == sorted([ids[0], ids[2]])

    diff = json.loads(cli(["runs", "diff", ids[1], ids[2], "--json"], cwd=trained).output)
    params = {r["key"]: r for r in diff["params"]}
    assert params["train.C"]["a"] == 0.3 and params["train.C"]["b"] == 3
    assert "accuracy" in {r["key"] for r in diff["metrics"]}
    text = cli(["runs", "diff", ids[1], ids[2]], cwd=trained).output
    assert "train.C" in text and "accuracy" in text

    # apply: the experiment's params land in params.yaml, comments kept; a run reproduces it
    applied = cli(["exp", "apply", ids[0]], cwd=trained)
    assert applied.exit_code == 0, applied.output
    params_text = (trained / "params.yaml").read_text()
    assert "C: 0.05" in params_text and "max_iter: 200" in params_text
    assert params_text.startswith("# Hyper-parameters")
    again = cli(["exp", "apply", ids[1]], cwd=trained)
    assert again.exit_code == ExitCode.GIT_STATE and "--force" in again.output
    rerun = cli(["run", "--json"], cwd=trained)
    assert json.loads(rerun.output)["metrics"] == records[ids[0]].metrics


def test_failed_experiment_leaves_the_workspace_as_it_was(trained: Path, cli):
    # uncommitted work in progress must survive too
    (trained / "notes.txt").write_text("work in progress\n")
    before = snapshot(trained)
    status_before = git(trained, "status", "--porcelain")
    result = cli(["exp", "run", "-S", "train.no_such_option=3"], cwd=trained)
    assert result.exit_code == ExitCode.USAGE, result.output
    assert "no_such_option" in result.output
    assert snapshot(trained) == before
    assert git(trained, "status", "--porcelain") == status_before
    assert git(trained, "worktree", "list").count("\n") == 0
    assert not any((trained / ".mlops/exp").iterdir())
    record = RunStore(trained).get("latest")
    assert record.kind == "exp" and record.outcome == "failed"
    assert record.extra["overrides"] == {"train.no_such_option": 3}
    # an invalid value is refused before anything runs, and nothing is recorded
    bad = cli(["exp", "run", "-S", "split.test_size=7"], cwd=trained)
    assert bad.exit_code == ExitCode.USAGE and "split.test_size" in bad.output
    assert RunStore(trained).get("latest").id == record.id
    assert snapshot(trained) == before


def test_experiment_sees_uncommitted_changes(trained: Path, cli):
    pipe = trained / "pipeline.yaml"
    replace_in(pipe, "accuracy: {min: 0.9}", "accuracy: {min: 0.9999}")
    result = cli(["exp", "run", "-S", "train.C=2", "--json"], cwd=trained)
    assert result.exit_code == ExitCode.GATE_FAILED, result.output
    gates = json.loads(result.output)[0]["gates"]
    assert any(g["threshold"] == 0.9999 and not g["passed"] for g in gates)
    assert "0.9999" in pipe.read_text()  # still the user's edit


def test_scratch_of_a_killed_experiment_is_removed_by_the_next(project: Path):
    """A SIGKILLed `mlops exp run` cannot clean up; the next one removes what it left."""
    import subprocess
    import sys

    from mlops.adapters import git as gitad
    from mlops.pipeline.experiments import SCRATCH, remove_stale_scratch

    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    left = project / SCRATCH / "20260101-000000-dead"
    left.parent.mkdir(parents=True, exist_ok=True)
    gitad.worktree_add(project, left, "HEAD")
    left.with_name(left.name + ".pid").write_text(dead.stdout.strip())
    live = project / SCRATCH / "20260101-000001-live"
    gitad.worktree_add(project, live, "HEAD")
    live.with_name(live.name + ".pid").write_text(str(__import__("os").getpid()))
    assert remove_stale_scratch(project) == [left.name]
    listed = git(project, "worktree", "list")
    assert left.name not in listed and live.name in listed
    assert not left.exists() and live.exists()

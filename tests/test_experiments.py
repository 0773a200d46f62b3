"""`mlops exp run/apply` and `mlops runs list/diff` on a real trained project."""

from __future__ import annotations

import hashlib
import json
import os
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


def _records(root: Path, ids: list[str]) -> list:
    store = RunStore(root)
    return [store.get(i) for i in ids]


def test_a_parallel_sweep_gives_what_one_at_a_time_gives(trained: Path, cli):
    """--jobs 2 against --jobs 1 on the same values, one failing: same results, records, exit
    code and message; records start in sweep order; nothing left behind."""
    from mlops.runner import lifecycle

    before = snapshot(trained)
    outs = {}
    kept = lifecycle.start(trained, owner=os.getpid())  # one runner's imports for both sweeps
    try:
        for jobs in ("1", "2"):
            args = ["exp", "run", "-S", "train.C=-1,3", "--jobs", jobs, "--json"]
            result = cli(args, cwd=trained)
            assert result.output.startswith("["), result.output
            outs[jobs] = (result.exit_code, json.loads(result.output))
    finally:
        assert kept.process is not None
        lifecycle.stop_process(kept.process)
    (code1, one), (code2, two) = outs["1"], outs["2"]
    assert code1 == code2 != 0  # the failing first experiment's code, as one at a time
    assert [r["overrides"] for r in two] == [{"train.C": -1}, {"train.C": 3}]
    for a, b in zip(one, two, strict=True):
        assert (a["outcome"], a["exit_code"], a["metrics"]) == (
            b["outcome"],
            b["exit_code"],
            b["metrics"],
        )
        assert [(s["name"], s["status"]) for s in a["stages"]] == [
            (s["name"], s["status"]) for s in b["stages"]
        ]
        assert a.get("error", {}).get("message") == b.get("error", {}).get("message")
    rec1 = _records(trained, [r["run_id"] for r in one])
    rec2 = _records(trained, [r["run_id"] for r in two])
    assert rec2[1].outcome == "ok" and rec2[0].outcome != "ok"
    for a, b in zip(rec1, rec2, strict=True):
        assert (a.kind, a.outs, a.deps, a.params, a.metrics, a.extra["overrides"]) == (
            b.kind,
            b.outs,
            b.deps,
            b.params,
            b.metrics,
            b.extra["overrides"],
        )
        assert (a.git_commit, a.git_branch, a.git_dirty) == (
            b.git_commit,
            b.git_branch,
            b.git_dirty,
        )
    assert rec2[0].started < rec2[1].started  # listed in sweep order
    assert snapshot(trained) == before
    assert git(trained, "worktree", "list").count("\n") == 0
    assert not list((trained / ".mlops/exp").iterdir())


def test_a_refused_setting_in_a_parallel_sweep_stops_it_as_one_at_a_time(trained: Path, cli):
    before = snapshot(trained)
    latest = RunStore(trained).get("latest").id
    result = cli(["exp", "run", "-S", "split.test_size=7,8", "--jobs", "2"], cwd=trained)
    assert result.exit_code == ExitCode.USAGE, result.output
    assert "split.test_size" in result.output
    assert RunStore(trained).get("latest").id == latest  # refused before anything ran
    assert snapshot(trained) == before
    assert git(trained, "worktree", "list").count("\n") == 0
    assert not list((trained / ".mlops/exp").iterdir())


def _session_alive(sid: int) -> list[int]:
    """Processes still alive (not zombies) in session `sid`."""
    alive = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid and fields[0] != "Z":
            alive.append(int(stat.parent.name))
    return alive


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_ctrl_c_stops_a_sweep_and_leaves_nothing_behind(trained: Path, jobs: str):
    """A real Ctrl-C (SIGINT to the foreground process group) while every running experiment
    is inside a stage: exit 130, each interrupted experiment recorded as such, no scratch tree,
    worker, stage or runner process left, the workspace untouched."""
    import signal
    import subprocess
    import sys
    import time

    from mlops.runner import lifecycle
    from tests.helpers import replace_in

    replace_in(
        trained / "pipeline.yaml",
        "environments:",
        "  block:\n"
        "    cmd: python -c \"import pathlib, time; pathlib.Path('blocking').touch(); "
        'time.sleep(600)"\n'
        "    params: [block]\n"
        "environments:",
    )
    with (trained / "params.yaml").open("a") as fh:
        fh.write("block: {x: 0}\n")
    before = snapshot(trained)
    latest = RunStore(trained).get("latest").id
    env = dict(os.environ, MLOPS_RUNNER_PRELOAD="0")  # the runner's protocol, not its speed
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env["PATH"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlops", "exp", "run", "-S", "block.x=1,2", "--jobs", jobs],
        cwd=trained,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group: the terminal's Ctrl-C, by hand
    )
    want = int(jobs)
    end = time.monotonic() + 120
    try:
        while len(list((trained / ".mlops/exp").glob("*/blocking"))) < want:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < end, "the experiments never reached their blocking stage"
            time.sleep(0.1)
        os.killpg(proc.pid, signal.SIGINT)
        _out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == ExitCode.INTERRUPTED, err
    assert "interrupted while stage 'block' ran" in err
    assert _session_alive(proc.pid) == []
    assert not list((trained / ".mlops/exp").iterdir())
    assert git(trained, "worktree", "list").count("\n") == 0
    assert snapshot(trained) == before
    runs = [r for r in RunStore(trained).list(limit=None) if r.kind == "exp" and r.id > latest]
    assert len(runs) == want  # a sequential sweep stops at its interrupted experiment
    assert all(r.exit_code == ExitCode.INTERRUPTED for r in runs)
    while lifecycle.status(trained) is not None:  # its runner stops once the command is gone
        assert time.monotonic() < end, "the command's runner outlived it"
        time.sleep(0.1)

"""One writer per repository and per deployment target (issue 13, item 7).

Two real `mlops run --force` processes in one repository, started at several offsets: both exit
with documented codes (0, or 5 naming the holder), and `dvc status` is clean afterwards. Before,
the loser of DVC's lock restored its old dvc.lock underneath the winner (dirty at 8 of 8 offsets).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from mlops.adapters import lock
from mlops.deploy.target import open_target
from mlops.errors import DeployError, ExitCode, GitStateError
from tests.security.run_cli import mlops, start

DVC = str(Path(sys.executable).parent / "dvc")


def _holding(path: Path, command: str = "holder") -> subprocess.Popen:
    """Another process holding the lock at `path` until killed; returns once it holds it."""
    code = textwrap.dedent(
        f"""
        import sys, time
        sys.argv = [{command!r}]
        from mlops.adapters.lock import hold
        with hold({str(path)!r}, what="x"):
            print("held", flush=True)
            time.sleep(600)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_holder_is_refused_naming_the_first(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / ".mlops" / "lock"
    other = _holding(path, "mlops run --force")
    try:
        monkeypatch.setenv(lock.WAIT_ENV, "0")
        with pytest.raises(GitStateError) as info, lock.hold(path, what="the repository"):
            pass
        assert info.value.exit_code == ExitCode.GIT_STATE
        assert f"pid {other.pid} (mlops run --force)" in info.value.message
        assert "since" in info.value.message and lock.WAIT_ENV in info.value.hint
    finally:
        other.kill()
        other.wait()
    with lock.hold(path, what="the repository"):  # released when its holder died
        info = json.loads(path.read_text())
        assert info["pid"] != other.pid


def test_waiting_is_reported_then_bounded(tmp_path: Path) -> None:
    path = tmp_path / "lock"
    other = _holding(path, "mlops deploy staging")
    said: list[str] = []
    lock.set_reporter(said.append)
    try:
        with pytest.raises(GitStateError), lock.hold(path, what="the target", wait=0.3):
            pass
    finally:
        lock.set_reporter(None)
        other.kill()
        other.wait()
    assert len(said) == 1 and "waiting up to" in said[0] and "mlops deploy staging" in said[0]


def test_the_lock_is_reentrant_in_one_process(tmp_path: Path) -> None:
    path = tmp_path / "lock"
    with lock.hold(path, what="r"), lock.hold(path, what="r"):
        assert json.loads(path.read_text())["pid"]
    other = _holding(path)  # released after the outer block: another process gets it
    other.kill()
    other.wait()


def test_a_deployment_target_has_its_own_lock(tmp_path: Path, monkeypatch) -> None:
    target = open_target(tmp_path / "envs" / "staging", create=True)
    other = _holding(target.root / ".lock", "mlops deploy staging")
    monkeypatch.setenv(lock.WAIT_ENV, "0")
    try:
        with pytest.raises(GitStateError) as info, target.lock():
            pass
        assert "deployment target" in info.value.message and str(other.pid) in info.value.message
    finally:
        other.kill()
        other.wait()


def test_an_unusable_target_is_a_deploy_error(tmp_path: Path) -> None:
    """A target whose lock cannot be created (here its place is taken by a file; a read-only
    directory fails the same way for a user other than root) is exit 6, not 1."""
    root = tmp_path / "target"
    root.mkdir()
    (root / ".lock").mkdir()  # cannot be opened for writing
    with pytest.raises(DeployError) as info, open_target(root).lock():
        pass
    assert info.value.exit_code == ExitCode.DEPLOY_FAILED and "writable" in info.value.hint


def test_an_unusable_mlops_dir_is_exit_5_with_a_hint(project: Path) -> None:
    (project / ".mlops").mkdir(exist_ok=True)
    (project / ".mlops" / "lock").mkdir()  # the lock file cannot be opened
    res = mlops(["run"], project)
    assert res.code == 5, res.text
    assert "cannot take the lock" in res.err and ".mlops" in res.err and "hint:" in res.err


def _dvc_status(root: Path) -> dict:
    out = subprocess.run(
        [DVC, "status", "--json"], cwd=root, capture_output=True, text=True, check=True
    ).stdout
    return json.loads(out or "{}")


@pytest.mark.slow
@pytest.mark.parametrize(("offset", "wait"), [(0.0, "0"), (0.7, "0"), (2.5, "0"), (1.0, "600")])
def test_two_concurrent_runs_leave_dvc_status_clean(trained: Path, offset: float, wait: str):
    env = {lock.WAIT_ENV: wait}
    first = start(["run", "--force"], trained, env)
    time.sleep(offset)
    second = start(["run", "--force"], trained, env)
    results = []
    for proc in (first, second):
        _out, err = proc.communicate(timeout=600)
        results.append((proc.returncode, proc.pid, err))
    codes = sorted(code for code, _, _ in results)
    assert codes in ([0, 0], [0, 5]), results
    for code, _, err in results:
        if code == 5:  # the loser names the holder, the winner's pid and command
            winner = next(pid for c, pid, _ in results if c == 0)
            assert f"locked by another mlops command: pid {winner}" in err, err
            assert "run --force" in err
    if wait != "0":  # the second waited, said so, then ran
        assert any("waiting up to 600 s" in err for _, _, err in results), results
    assert _dvc_status(trained) == {}

"""The warm runner (issue 22): same output, exit codes, signals and bytes as a stage run alone;
one runner per repository; hostile requests refused."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from mlops.handoff.address import git_common_dir, runtime_dir, socket_path
from mlops.runner import lifecycle
from tests.helpers import git

DEADLINE = 120.0  # seconds to wait for a state the test drives towards (not a timing check)


def _wait(cond, what: str):
    end = time.monotonic() + DEADLINE
    while time.monotonic() < end:
        value = cond()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"never happened: {what}")


@pytest.fixture
def warm(monkeypatch):
    """Start runners without preloading (the protocol, not the speed, is under test); stop
    every runner started, whatever the test did."""
    monkeypatch.setenv("MLOPS_RUNNER_PRELOAD", "0")
    started: list[lifecycle.RunnerInfo] = []

    def start(root: Path) -> lifecycle.RunnerInfo:
        info = lifecycle.start(root, owner=os.getpid())
        started.append(info)
        return info

    yield start
    for info in started:
        if info.process is not None:
            lifecycle.stop_process(info.process)


def _stage(root: Path, name: str, *, runner: bool = True, **kw) -> subprocess.Popen:
    env = dict(os.environ, MLOPS_RUNNER="1" if runner else "0")
    return subprocess.Popen(
        [sys.executable, "-m", "mlops.stages", name],
        cwd=root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kw,
    )


def _served(root: Path) -> int:
    info = lifecycle.status(root)
    assert info is not None
    return info.status["served"]


def _tree_digest(root: Path) -> dict[str, str]:
    out = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        if p.is_file() and not p.is_symlink() and not rel.startswith((".git/", ".mlops/")):
            out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def test_a_failing_stage_prints_and_exits_the_same_through_the_runner(project: Path, warm):
    csv = project / "data/raw/penguins.csv"
    csv.parent.mkdir(parents=True, exist_ok=True)
    csv.write_text("species,island\nMartian,Mars\n")  # fails the data contract: exit 3
    warm(project)
    results = {}
    for runner in (True, False):
        for name in ("validate", "no-such-stage"):
            proc = _stage(project, name, runner=runner)
            out, err = proc.communicate()
            results[runner, name] = (proc.returncode, out, err)
    assert _served(project) == 2  # the runner ran both, and exits and output match a plain run
    for name in ("validate", "no-such-stage"):
        assert results[True, name] == results[False, name]
    assert results[True, "validate"][0] == 3
    assert "failed checks" in results[True, "validate"][2]
    assert results[True, "no-such-stage"][0] == 1


def _blocked_on_fifo(project: Path) -> Path:
    fifo = project / "data/raw/penguins.csv"
    fifo.parent.mkdir(parents=True, exist_ok=True)
    fifo.unlink(missing_ok=True)
    os.mkfifo(fifo)
    return fifo


def _open_writer(fifo: Path) -> int:
    """Open the FIFO's write end once the stage has opened it to read (it then blocks in read)."""

    def attempt():
        try:
            return os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        except OSError:
            return None

    return _wait(attempt, "the stage opened its input")


@pytest.mark.parametrize("runner", [True, False], ids=["runner", "in-process"])
def test_ctrl_c_interrupts_a_stage_as_it_would_without_the_runner(project: Path, warm, runner):
    fifo = _blocked_on_fifo(project)
    if runner:
        warm(project)
    before = _tree_digest(project)
    proc = _stage(project, "validate", runner=runner)
    writer = _open_writer(fifo)
    try:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=DEADLINE)
    finally:
        os.close(writer)
    # Python's own behaviour for an uncaught Ctrl-C: the traceback, then death by SIGINT
    assert proc.returncode == -signal.SIGINT
    assert err.rstrip().endswith("KeyboardInterrupt")
    assert _tree_digest(project) == before
    if runner:
        assert _served(project) == 1


def test_a_killed_client_takes_its_stage_down_and_the_runner_serves_on(project: Path, warm):
    fifo = _blocked_on_fifo(project)
    warm(project)
    before = _tree_digest(project)
    proc = _stage(project, "validate")
    writer = _open_writer(fifo)
    try:
        proc.kill()  # SIGKILL: the client cannot forward anything
        proc.wait()

        def reader_gone() -> bool:  # the forked stage held the read end: writing fails once gone
            try:
                os.write(writer, b"x")
            except BrokenPipeError:
                return True
            return False

        _wait(reader_gone, "the stage died with its client")
    finally:
        os.close(writer)
    _wait(lambda: lifecycle.status(project).status["running"] == 0, "the runner reaped it")
    assert _tree_digest(project) == before
    fifo.unlink()
    again = _stage(project, "validate")
    again.communicate()
    assert _served(project) == 2


def test_two_repositories_never_share_a_runner_but_worktrees_do(tmp_path: Path, project, warm):
    other = tmp_path / "other"
    other.mkdir()
    git(other, "init", "-q")
    (other / "pipeline.yaml").write_text((project / "pipeline.yaml").read_text())
    info = warm(project)
    assert lifecycle.status(other) is None
    assert socket_path(git_common_dir(other)) != socket_path(git_common_dir(project))
    tree = tmp_path / "tree"
    git(project, "worktree", "add", "-q", str(tree), "HEAD")
    assert git_common_dir(tree) == git_common_dir(project)
    assert lifecycle.status(tree).pid == info.pid
    # a request naming another repository is refused even on this repository's socket
    reply = _raw_request(Path(info.socket), {"op": "run", "common": str(git_common_dir(other))})
    assert reply == {"declined": "another repository"}
    # so is a request from another interpreter or import path
    msg = {"op": "run", "common": str(git_common_dir(project)), "fingerprint": {"python": "x"}}
    assert "another interpreter" in _raw_request(Path(info.socket), msg)["declined"]
    # a stage of the other repository runs in-process, as without any runner
    runs = [_stage(other, "no-such-stage", runner=r).communicate() for r in (True, False)]
    assert runs[0] == runs[1] and "error" in runs[0][1]
    assert _served(project) == 0


def _raw_request(path: Path, msg: dict) -> dict:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(DEADLINE)
        sock.connect(str(path))
        socket.send_fds(sock, [json.dumps(msg).encode() + b"\n"], [0, 1, 2])
        return json.loads(sock.makefile().readline())


def test_hostile_requests_are_dropped_and_the_runner_serves_on(project: Path, warm):
    info = warm(project)
    for junk in (b"not json\n", b"[1, 2]\n", b"x" * (2 << 20)):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(DEADLINE)
            sock.connect(info.socket)
            try:
                sock.sendall(junk)
                assert sock.recv(100) == b""  # closed without an answer
            except (BrokenPipeError, ConnectionResetError):
                pass
    msg = {"op": "run", "common": info.common, "fingerprint": info.status["fingerprint"]}
    for bad in ({"argv": "rm -rf /"}, {"argv": ["x"], "cwd": "/nonexistent", "env": {}}):
        assert "declined" in _raw_request(Path(info.socket), {**msg, **bad})
    assert oct(os.stat(info.socket).st_mode & 0o777) == "0o600"
    assert lifecycle.status(project).pid == info.pid


def test_the_socket_directory_must_be_private_and_paths_fit_af_unix(tmp_path, monkeypatch):
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    shared.chmod(0o755)
    monkeypatch.setenv("MLOPS_RUNNER_DIR", str(shared))
    with pytest.raises(OSError, match="other users"):
        runtime_dir()
    deep = tmp_path / ("d" * 120)
    monkeypatch.setenv("MLOPS_RUNNER_DIR", str(deep))
    path = socket_path(tmp_path / ".git")
    assert len(os.fsencode(path)) <= 107


def test_a_stage_runs_in_process_when_the_runner_directory_is_not_private(
    project: Path, tmp_path, monkeypatch
):
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    monkeypatch.setenv("MLOPS_RUNNER_DIR", str(shared))
    proc = _stage(project, "no-such-stage")
    _, err = proc.communicate()
    assert proc.returncode == 1 and "not a built-in stage" in err


def _outs(lock: Path) -> dict[str, str]:
    data = yaml.safe_load(lock.read_text())
    return {
        f"{name}:{o['path']}": o["md5"]
        for name, stage in data["stages"].items()
        for o in stage.get("outs", [])
    }


@pytest.mark.slow
def test_a_forced_run_with_the_runner_rebuilds_the_same_bytes(trained: Path, cli, monkeypatch):
    # two copies of one trained project, each forced once: without the runner, then with it
    plain = trained.parent / "plain"
    shutil.copytree(trained, plain, symlinks=True)
    monkeypatch.setenv("MLOPS_RUNNER", "0")
    result = cli(["run", "--force"], cwd=plain)
    assert result.exit_code == 0, result.output
    monkeypatch.delenv("MLOPS_RUNNER")
    log = lifecycle.log_path(git_common_dir(trained))
    log.unlink(missing_ok=True)
    result = cli(["run", "--force"], cwd=trained)
    assert result.exit_code == 0, result.output
    text = log.read_text()
    for stage in ("ingest", "validate", "split", "train", "evaluate"):
        assert f"__main__.py {stage} in {trained}" in text  # served by the runner
    assert _outs(trained / "dvc.lock") == _outs(plain / "dvc.lock")
    assert lifecycle.status(trained) is None  # the command's runner is gone with it


def test_a_killed_command_does_not_leave_its_runner_behind(project: Path, monkeypatch):
    monkeypatch.setenv("MLOPS_RUNNER_PRELOAD", "0")
    owner = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import os, sys, time\n"
            "from mlops.runner import lifecycle\n"
            "info = lifecycle.start('.', owner=os.getpid())\n"
            "print(info.pid, flush=True)\n"
            "time.sleep(600)\n",
        ],
        cwd=project,
        stdout=subprocess.PIPE,
        text=True,
    )
    runner_pid = int(owner.stdout.readline())
    assert lifecycle.status(project).pid == runner_pid
    owner.kill()  # SIGKILL: no clean-up code of the command runs
    owner.wait()
    owner.stdout.close()
    _wait(lambda: lifecycle.status(project) is None, "the runner noticed its owner died")
    _wait(lambda: not _running(runner_pid), "the runner process exited")


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            return f.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except OSError:
        return False


def test_a_runner_is_started_only_when_two_built_in_stages_will_run(trained: Path):
    from mlops.runner.plan import builtin_stages_to_run, worth_a_runner

    assert builtin_stages_to_run(trained) == 0  # everything up to date
    assert builtin_stages_to_run(trained, force=True) == 5
    assert builtin_stages_to_run(trained, ["split"], force=True) == 3  # split and upstream
    assert not worth_a_runner(trained, force=False)
    params = trained / "params.yaml"
    params.write_text(params.read_text().replace("C: 1.0", "C: 0.5"))
    assert builtin_stages_to_run(trained) == 2  # train and evaluate, downstream of it
    assert worth_a_runner(trained, force=False)
    subprocess.run(["git", "checkout", "-q", "params.yaml"], cwd=trained, check=True)
    pipeline = trained / "pipeline.yaml"
    text = pipeline.read_text()
    assert "accuracy: {min: 0.9}" in text
    pipeline.write_text(text.replace("accuracy: {min: 0.9}", "accuracy: {min: 0.91}"))
    assert builtin_stages_to_run(trained) == 1  # a gate: evaluate alone reruns
    assert not worth_a_runner(trained, force=False)
    pipeline.write_text(text.replace("accuracy: {min: 0.9}", "accuracy: {min: 0.91}  # new"))
    (trained / "dvc.yaml").write_text("stages: {}\n")  # stale: the run recompiles it first
    assert builtin_stages_to_run(trained) is None  # DVC's status would be moot: assume all
    assert worth_a_runner(trained, force=False)
    pipeline.write_text(text + "\nbogus: [\n")
    assert builtin_stages_to_run(trained) == 0  # the run stops at the config error
    assert not worth_a_runner(trained, force=False)


def test_the_command_started_runner_is_taken_over_by_the_session_or_stopped(
    project: Path, monkeypatch
):
    # `mlops run --force` starts its runner before the CLI loads (mlops.entry); the session
    # uses that one, and stops it when it decides against a runner; nothing is left behind
    monkeypatch.setenv("MLOPS_RUNNER_PRELOAD", "0")
    monkeypatch.chdir(project)
    lifecycle.start_early(project)
    early = lifecycle._EARLY[-1]
    with lifecycle.session(project, force=True) as info:
        assert info is early and lifecycle.status(project).pid == early.pid
        assert not lifecycle._EARLY
    assert lifecycle.status(project) is None and early.process.poll() is not None
    lifecycle.start_early(project)
    early = lifecycle._EARLY[-1]
    with lifecycle.session(project, enabled=False) as info:  # a dry run
        assert info is None and early.process.poll() is not None
    assert lifecycle.status(project) is None
    monkeypatch.setenv("MLOPS_RUNNER", "0")
    lifecycle.start_early(project)
    assert not lifecycle._EARLY


def test_a_stage_waits_for_its_kind_of_modules_and_the_packages_helper_gives_the_same_answer():
    from importlib import metadata

    from mlops.bundle import codepin
    from mlops.runner import preload, server

    # a stage is forked once the modules of its `uses:` are in; another kind waits for all
    data = {"stages": {"prep": {"uses": "ingest"}, "mine": {"run": "python x.py"}}}
    assert server.stage_kind(data, ["prep"]) == "ingest"
    assert server.stage_kind(data, ["mine"]) is None and server.stage_kind([], ["x"]) is None
    markers = [n[1:] for n in preload.PRELOAD if n.startswith(preload.READY)]
    assert markers == ["ingest", "split", "validate", "train", "evaluate"]
    # the code pin's distributions, computed by a forked helper, equal the in-process answer
    helper = preload.packages_helper([])
    assert helper is not None
    codepin._PACKAGES.clear()
    preload.take_packages(helper)
    assert codepin._PACKAGES[tuple(sys.path[1:])] == metadata.packages_distributions()
    codepin._PACKAGES.clear()


EXPIT_PY = '''"""A classifier holding a function that has no __module__ (a SciPy ufunc)."""
import numpy as np
import scipy.special
from sklearn.base import BaseEstimator, ClassifierMixin


class ExpitCentroids(ClassifierMixin, BaseEstimator):
    def fit(self, X, y):
        X, y = np.asarray(X, dtype=float), np.asarray(y)
        self.classes_ = np.unique(y)
        self.centroids_ = np.stack([X[y == c].mean(axis=0) for c in self.classes_])
        self.squash_ = scipy.special.expit
        self.n_features_in_ = X.shape[1]
        return self

    def predict_proba(self, X):
        d = ((np.asarray(X, dtype=float)[:, None, :] - self.centroids_[None]) ** 2).sum(axis=2)
        s = self.squash_(d.min(axis=1, keepdims=True) - d)
        return s / s.sum(axis=1, keepdims=True)

    def predict(self, X):
        return self.classes_[self.predict_proba(X).argmax(axis=1)]
'''


@pytest.mark.slow
def test_a_model_holding_a_function_without_module_is_the_same_bytes_from_the_runner(
    trained: Path, monkeypatch
):
    # skops names such a function (scipy.special.expit) after the first module in sys.modules
    # holding it: the runner's import order (its preload) must not change the model's bytes
    (trained / "expitmodel.py").write_text(EXPIT_PY)
    for name, edit in (
        ("params.yaml", lambda d: d.update(train={"estimator": "expitmodel:ExpitCentroids"})),
        ("pipeline.yaml", lambda d: d["model"].update(trusted_types=["expitmodel.ExpitCentroids"])),
    ):
        data = yaml.safe_load((trained / name).read_text())
        edit(data)
        (trained / name).write_text(yaml.safe_dump(data, sort_keys=False))
    build = trained / "build"  # where the train stage writes its bundle

    def train(runner: bool) -> dict[str, str]:
        _, err = _stage(trained, "train", runner=runner).communicate()
        assert "error" not in err, err
        return {k: v for k, v in _tree_digest(trained).items() if k.startswith("build/")}

    alone = train(runner=False)
    skops_files = list(build.rglob("*.skops"))
    assert skops_files and b"scipy.special" in skops_files[0].read_bytes()  # the function
    shutil.rmtree(skops_files[0].parent)  # the bundle, rebuilt next
    monkeypatch.delenv("MLOPS_RUNNER_PRELOAD", raising=False)
    info = lifecycle.start(trained, owner=os.getpid())
    try:
        assert train(runner=True) == alone
        assert _served(trained) == 1
    finally:
        lifecycle.stop_process(info.process)

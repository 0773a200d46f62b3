"""Run records in git: one ref per record, pushed and fetched, indexed in `.mlops/runs.db`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mlops.pipeline import gitrecords
from mlops.pipeline.records import RunRecord, RunStore
from tests.helpers import commit_all, git

REPO_ROOT = Path(__file__).resolve().parents[1]


def _origin_and_clones(tmp_path: Path, *names: str) -> tuple[Path, list[Path]]:
    origin = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(origin))
    seed = tmp_path / "seed"
    git(tmp_path, "clone", "-q", str(origin), str(seed))
    (seed / "README.md").write_text("project\n")
    commit_all(seed, "start")
    git(seed, "push", "-q", "origin", "main")
    clones = []
    for name in names:
        dest = tmp_path / name
        git(tmp_path, "clone", "-q", str(origin), str(dest))
        clones.append(dest)
    return origin, clones


def _record(run_id: str, **kw) -> RunRecord:
    return RunRecord(
        id=run_id,
        kind=kw.pop("kind", "run"),
        started=kw.pop("started", time.time()),
        ended=time.time(),
        outcome="ok",
        metrics=kw.pop("metrics", {"accuracy": 0.9}),
        params=kw.pop("params", {"train": {"C": 1.0}}),
        **kw,
    )


def _ids(cli, where: Path) -> list[str]:
    res = cli(["runs", "list", "--json"], cwd=where)
    assert res.exit_code == 0, res.output
    return [r["id"] for r in json.loads(res.output)]


def test_two_clones_see_each_others_runs_after_a_plain_git_fetch(tmp_path: Path, cli) -> None:
    _, (alice, bob) = _origin_and_clones(tmp_path, "alice", "bob")
    RunStore(alice).save(_record("20261201-100000-aaaa", metrics={"accuracy": 0.91}))
    RunStore(bob).save(_record("20261201-100100-bbbb", metrics={"accuracy": 0.93}))
    assert cli(["runs", "push"], cwd=alice).exit_code == 0
    assert cli(["runs", "push"], cwd=bob).exit_code == 0
    # each clone was configured (by its first record) so that a plain `git fetch` brings them
    git(alice, "fetch", "-q")
    git(bob, "fetch", "-q")
    assert sorted(_ids(cli, alice)) == ["20261201-100000-aaaa", "20261201-100100-bbbb"]
    assert sorted(_ids(cli, bob)) == ["20261201-100000-aaaa", "20261201-100100-bbbb"]
    diff = cli(["runs", "diff", "20261201-100000", "20261201-100100", "--json"], cwd=bob)
    assert diff.exit_code == 0, diff.output
    assert "accuracy" in diff.output
    # a fresh clone: `mlops runs pull` fetches them and sets up `git fetch` for later
    carol = tmp_path / "carol"
    git(tmp_path, "clone", "-q", str(tmp_path / "origin.git"), str(carol))
    res = cli(["runs", "pull", "--json"], cwd=carol)
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["new"] == 2
    assert gitrecords.REFSPEC in git(carol, "config", "--get-all", "remote.origin.fetch")
    show = cli(["runs", "show", "20261201-100000", "--json"], cwd=carol)
    assert json.loads(show.output)["metrics"] == {"accuracy": 0.91}


def test_the_index_is_rebuilt_from_git_and_only_new_refs_are_read(tmp_path: Path) -> None:
    _, (repo,) = _origin_and_clones(tmp_path, "repo")
    store = RunStore(repo)
    for i in range(3):
        store.save(_record(f"20261201-10000{i}-000{i}", started=1000.0 + i))
    (repo / ".mlops" / "runs.db").unlink()
    fresh = RunStore(repo)
    assert [r.id for r in fresh.list()] == [f"20261201-10000{i}-000{i}" for i in (2, 1, 0)]
    assert fresh.sync() == 0  # nothing new: no blob is read again
    other = tmp_path / "other"
    git(tmp_path, "clone", "-q", str(tmp_path / "origin.git"), str(other))
    RunStore(other).save(_record("20261201-110000-ffff"))
    gitrecords.push(other)
    git(repo, "fetch", "-q")
    assert fresh.sync() == 1


def test_concurrent_writers_pushing_at_once_both_land(tmp_path: Path) -> None:
    origin, clones = _origin_and_clones(tmp_path, "job1", "job2", "job3", "job4")
    script = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from mlops.pipeline.records import RunRecord, RunStore\n"
        "from mlops.pipeline import gitrecords\n"
        "root = Path(sys.argv[1])\n"
        "for i in range(5):\n"
        "    rec = RunRecord(id=f'{root.name}-{i}', kind='run', started=time.time())\n"
        "    RunStore(root).save(rec)\n"
        "res = gitrecords.push(root)\n"
        "sys.exit(res.code)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    procs = [
        subprocess.Popen([sys.executable, "-c", script, str(c)], env=env, stderr=subprocess.PIPE)
        for c in clones
    ]
    codes = [p.wait() for p in procs]
    assert codes == [0, 0, 0, 0], [p.stderr.read() for p in procs if p.stderr]
    remote = git(tmp_path, "ls-remote", str(origin), "refs/mlops/records/*")
    names = sorted(line.split("\t")[1].rsplit("/", 1)[1] for line in remote.splitlines())
    assert names == sorted(f"{c.name}-{i}" for c in clones for i in range(5))


def test_secrets_never_enter_a_record(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _, (repo,) = _origin_and_clones(tmp_path, "repo")
    monkeypatch.setenv("MLOPS_GITLAB_TOKEN", "glpat-verysecret123")
    monkeypatch.setenv("SLACK_URL", "https://hooks.slack.com/services/T000/B000/XXXXsecret")
    rec = _record(
        "20261201-120000-5ec7",
        message="push to https://oauth2:glpat-verysecret123@gitlab.example.com/x.git failed",
        params={"db": {"password": "hunter2hunter2", "url": "postgres://u:pw123456@db/x"}},
        extra={"notify": "sent to https://hooks.slack.com/services/T000/B000/XXXXsecret"},
    )
    RunStore(repo).save(rec)
    oid = git(repo, "rev-parse", "refs/mlops/records/20261201-120000-5ec7")
    blob = git(repo, "cat-file", "-p", oid)
    for secret in ("glpat-verysecret123", "XXXXsecret", "hunter2hunter2", "pw123456"):
        assert secret not in blob
    data = json.loads(blob)
    assert data["params"]["db"]["password"] == "***"
    assert "gitlab.example.com" in data["message"]
    assert len(blob) < 2048  # metrics and hashes, not data


def test_records_read_from_git_are_checked(tmp_path: Path) -> None:
    _, (repo,) = _origin_and_clones(tmp_path, "repo")
    RunStore(repo).save(_record("20261201-130000-600d"))

    def plant(name: str, content: bytes) -> None:
        oid = (
            subprocess.run(
                ["git", "-C", str(repo), "hash-object", "-w", "--stdin"],
                input=content,
                capture_output=True,
                check=True,
            )
            .stdout.decode()
            .strip()
        )
        git(repo, "update-ref", f"refs/mlops/records/{name}", oid)

    plant("not-json", b"\x00\xffnot json")
    plant("other-id", json.dumps({"id": "someone-else", "kind": "run", "started": 1}).encode())
    plant("bad-type", json.dumps({"id": "bad-type", "kind": "run", "started": "soon"}).encode())
    plant(
        "too-big",
        json.dumps({"id": "too-big", "kind": "run", "started": 1, "message": "x" * 70000}).encode(),
    )
    plant("a-list", b"[1, 2]")
    tree = git(repo, "rev-parse", "HEAD^{tree}")
    git(repo, "update-ref", "refs/mlops/records/a-tree", tree)
    (repo / ".mlops" / "runs.db").unlink()
    assert [r.id for r in RunStore(repo).list()] == ["20261201-130000-600d"]


def test_a_record_outside_git_stays_local(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    store.save(_record("20261201-140000-0001"))
    assert [r.id for r in store.list()] == ["20261201-140000-0001"]


def test_oversized_records_lose_their_stage_details_first() -> None:
    rec = _record("x-1", stages=[{"name": "train", "status": "ran", "log": "y" * 100_000}])
    data = gitrecords.encode(rec.to_dict(), secrets=[])
    assert len(data) <= gitrecords.MAX_BYTES
    back = gitrecords.decode(data, "x-1")
    assert back is not None and back["stages"] == [{"name": "train", "status": "ran"}]
    assert back["metrics"] == {"accuracy": 0.9}

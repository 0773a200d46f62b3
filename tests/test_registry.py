"""The registry on real git repositories: gto interop, promotion (tags and merge requests),
rollback, races, refusals. Versions are registered with real tags (by `gto` or by hand), so no
model is trained here; `tests/test_registry_flow.py` covers `mlops register` on a real bundle."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from mlops import api
from mlops.errors import ExitCode
from tests.helpers import commit_all, git
from tests.registry_helpers import (
    NAME,
    at,
    gto,
    gto_state,
    mlops_state,
    origin_for,
    refs,
    register_by_hand,
)


@pytest.fixture
def when(monkeypatch):
    """`when(n)`: git writes tags dated n seconds after a fixed instant (order without sleeps)."""

    def set_time(seconds: int) -> None:
        for k, v in at(seconds).items():
            monkeypatch.setenv(k, v)

    return set_time


# ---- interoperability with gto -----------------------------------------------------------


def test_tags_written_by_gto_read_the_same(project: Path, cli):
    gto(project, "register", NAME, "HEAD")
    git(project, "commit", "-q", "--allow-empty", "-m", "second")
    gto(project, "register", NAME, "HEAD", "--bump-minor")
    gto(project, "assign", NAME, "--version", "v0.0.1", "--stage", "prod")
    gto(project, "assign", NAME, "--version", "v0.1.0", "--stage", "staging")
    gto(project, "assign", NAME, "--version", "v0.1.0", "--stage", "prod")
    gto(project, "deprecate", NAME, "v0.1.0", "prod")  # unassign: prod goes back to v0.0.1
    git(project, "tag", "other-1.0")  # not a registry tag
    assert mlops_state(cli, project) == gto_state(project)
    assert mlops_state(cli, project)[NAME]["stage"] == {"prod": "v0.0.1", "staging": "v0.1.0"}
    ours = json.loads(cli(["registry", "history", NAME, "--json"], cwd=project).output)
    theirs = json.loads(gto(project, "history", NAME, "--json"))
    pick = ("event", "version", "stage", "commit", "author", "timestamp")
    assert [{k: e[k] for k in pick} for e in ours] == [{k: e[k] for k in pick} for e in theirs]


def test_tags_written_by_mlops_read_the_same_in_gto(project: Path, cli, when):
    when(0)
    register_by_hand(project, "v0.0.1")
    when(1)
    register_by_hand(project, "v0.0.2")
    when(2)
    assert cli(["promote", NAME, "v0.0.1", "--to", "staging"], cwd=project).exit_code == 0
    when(3)
    assert cli(["promote", NAME, "v0.0.2", "--to", "staging"], cwd=project).exit_code == 0
    when(4)
    result = cli(["rollback", "--env", "staging"], cwd=project)
    assert result.exit_code == 0, result.output
    assert mlops_state(cli, project)[NAME]["stage"] == {"staging": "v0.0.1"}
    assert git(project, "tag", "-l", f"{NAME}#staging#*").split() == [
        f"{NAME}#staging#1",
        f"{NAME}#staging#2",
        f"{NAME}#staging#3",
    ]
    when(6)
    assert cli(["deregister", NAME, "v0.0.2"], cwd=project).exit_code == 0
    state = gto_state(project)
    assert state == mlops_state(cli, project)
    assert state[NAME] == {
        "version": "v0.0.1",
        "stage": {"staging": "v0.0.1"},
        "registered": True,
        "active": True,
    }
    when(7)
    assert cli(["deprecate", NAME], cwd=project).exit_code == 0
    state = gto_state(project)
    assert state == mlops_state(cli, project)
    assert state[NAME]["active"] is False
    assert cli(["deprecate", NAME], cwd=project).exit_code == ExitCode.GIT_STATE


def test_back_to_back_promotions_never_share_a_second(project: Path, cli):
    """Tagger dates have one-second resolution and GTO breaks ties differently from DVC; mlops
    never writes a stage event in the same second as the artifact's previous one."""
    register_by_hand(project, "v0.0.1")
    register_by_hand(project, "v0.0.2")
    for version in ("v0.0.1", "v0.0.2", "v0.0.1"):
        assert cli(["promote", NAME, version, "--to", "staging"], cwd=project).exit_code == 0
    dates = git(
        project, "for-each-ref", "--format=%(taggerdate:unix)", f"refs/tags/{NAME}#staging#*"
    ).split()
    assert len(dates) == 3 and len(set(dates)) == 3
    assert mlops_state(cli, project) == gto_state(project)
    assert gto_state(project)[NAME]["stage"] == {"staging": "v0.0.1"}


# ---- promotion -------------------------------------------------------------------------


def test_promote_to_pinned_env_pushes_a_branch_with_merge_request_options(
    project: Path, tmp_path: Path, cli, when
):
    when(0)
    register_by_hand(project, "v0.0.1", accuracy=0.91)
    when(1)
    commit = register_by_hand(project, "v0.0.2", accuracy=0.95)
    # production runs v0.0.1 on main (as if an earlier promotion had been merged)
    (project / "deploy").mkdir()
    (project / "deploy/production.yaml").write_text(
        "# pinned by the team\nmodel: penguins-classifier\nversion: v0.0.1\n"
    )
    main = commit_all(project, "Pin production")
    origin = origin_for(project, tmp_path)
    git(project, "push", "-q", "origin", "--tags")
    (project / "notes.txt").write_text("my work in progress\n")
    head, status = git(project, "rev-parse", "HEAD"), git(project, "status", "--porcelain")
    when(2)
    result = cli(["promote", NAME, "v0.0.2", "--to", "production", "--json"], cwd=project)
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    branch = "promote/penguins-classifier-production-v0.0.2"
    assert out["branch"] == branch and out["push_options"] is True
    assert out["replaces"] == "v0.0.1" and out["target_branch"] == "main"
    # the remote has the branch: one commit on main that changes only the pin file
    assert git(origin, "rev-list", f"main..{branch}").split() == [out["branch_commit"]]
    assert git(origin, "rev-parse", f"{branch}^") == main
    changed = git(origin, "diff", "--name-only", f"main..{branch}").split()
    assert changed == ["deploy/production.yaml"]
    pin = git(origin, "show", f"{branch}:deploy/production.yaml")
    assert pin == "# pinned by the team\nmodel: penguins-classifier\nversion: v0.0.2"
    # the push carried the merge-request options
    log = (origin / "push-log.txt").read_text()
    options = [ln[len("option: ") :] for ln in log.splitlines() if ln.startswith("option: ")]
    assert "merge_request.create" in options
    assert "merge_request.target=main" in options
    assert f"merge_request.title=Promote {NAME} v0.0.2 to production" in options
    description = next(o for o in options if o.startswith("merge_request.description="))
    assert "<td>accuracy</td><td>0.91</td><td>0.95</td><td>+0.04</td>" in description
    assert commit[:12] in description
    # nothing changed locally: same HEAD, same work tree, no branch left behind
    assert git(project, "rev-parse", "HEAD") == head
    assert git(project, "status", "--porcelain") == status
    assert f"refs/heads/{branch}" not in refs(project)
    # promoting what is already pinned is refused
    assert git(origin, "show", "main:deploy/production.yaml").endswith("version: v0.0.1")
    result = cli(["promote", NAME, "v0.0.1", "--to", "production"], cwd=project)
    assert result.exit_code == ExitCode.GIT_STATE
    assert "nothing to promote" in result.output


def test_promote_on_a_remote_without_push_options_still_pushes(project: Path, tmp_path: Path, cli):
    register_by_hand(project, "v0.0.1")
    origin = origin_for(project, tmp_path, push_options=False)
    result = cli(["promote", NAME, "v0.0.1", "--to", "production"], cwd=project)
    assert result.exit_code == 0, result.output
    assert "does not accept push options" in result.output
    assert "open one from promote/penguins-classifier-production-v0.0.1 into main" in (
        " ".join(result.output.split())
    )
    branch = "refs/heads/promote/penguins-classifier-production-v0.0.1"
    assert branch in refs(origin)
    assert f"refs/tags/{NAME}@v0.0.1" in refs(origin)  # the version it names went along
    assert "options=0" in (origin / "push-log.txt").read_text()


def test_stage_tag_push_carries_the_registration_and_a_counter_claim(
    project: Path, tmp_path: Path, cli
):
    register_by_hand(project, "v0.0.1")
    origin = origin_for(project, tmp_path)
    result = cli(["promote", NAME, "v0.0.1", "--to", "staging", "--push", "--json"], cwd=project)
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["tag"] == f"{NAME}#staging#1"
    on_origin = refs(origin)
    for name in (f"{NAME}#staging#1", f"{NAME}#reserved#1", f"{NAME}@v0.0.1"):
        assert f"refs/tags/{name}" in on_origin
    assert git(origin, "cat-file", "-t", f"{NAME}#staging#1") == "tag"  # annotated
    assert git(origin, "cat-file", "-t", f"{NAME}#reserved#1") == "commit"  # lightweight


@pytest.mark.parametrize(
    "args, expect",
    [
        (["promote", "nope", "v0.0.1", "--to", "staging"], "no artifact 'nope'"),
        (["promote", NAME, "v9.9.9", "--to", "staging"], "v9.9.9 is not registered"),
        (["promote", NAME, "v0.0.1", "--to", "moon"], "unknown environment 'moon'"),
        (["promote", NAME, "v0.0.1", "--to", "production"], "no git remote 'origin'"),
        (["promote", NAME, "v0.0.1", "--to", "staging", "--push"], "git remote add"),
        (["promote", NAME, "v0.0.2", "--to", "staging"], "not blessed"),
        (["rollback", "--env", "staging"], "nothing to roll back to"),
        (["deregister", NAME, "v7.0.0"], "not registered"),
        (["lineage", f"{NAME}@v3.0.0"], "not registered"),
    ],
)
def test_refusals_exit_5_say_what_to_do_and_leave_nothing(
    project: Path, cli, args: list[str], expect: str
):
    register_by_hand(project, "v0.0.1")
    register_by_hand(project, "v0.0.2", blessed=False)
    before = refs(project)
    result = cli(args, cwd=project)
    assert result.exit_code == ExitCode.GIT_STATE, result.output
    text = " ".join(result.output.split())
    assert expect in text
    assert "hint:" in result.output
    assert refs(project) == before


def test_rejected_push_leaves_no_local_tag_and_the_retry_succeeds(
    project: Path, tmp_path: Path, cli
):
    """Another promoter pushes counter 2 between our fetch and our push (a pre-push hook
    of ours runs their promotion at exactly that moment)."""
    register_by_hand(project, "v0.0.1")
    register_by_hand(project, "v0.0.2")
    origin = origin_for(project, tmp_path)
    git(project, "push", "-q", "origin", "--tags")
    assert cli(["promote", NAME, "v0.0.1", "--to", "staging", "--push"], cwd=project).exit_code == 0
    other = tmp_path / "other"
    git(tmp_path, "clone", "-q", str(origin), str(other))
    pipe = other / "pipeline.yaml"  # they promote to another environment at the same time
    pipe.write_text(pipe.read_text() + "  canary:\n    track: latest\n")
    hook = project / ".git/hooks/pre-push"
    hook.write_text(
        "#!/bin/sh\n"
        f"[ -e {tmp_path}/raced ] && exit 0\ntouch {tmp_path}/raced\n"
        f"cd {other} && {sys.executable} -m mlops promote {NAME} v0.0.2 --to canary --push "
        ">/dev/null 2>&1 || exit 1\n"
    )
    hook.chmod(0o755)
    before = refs(project)
    result = cli(["promote", NAME, "v0.0.2", "--to", "staging", "--push"], cwd=project)
    assert result.exit_code == ExitCode.GIT_STATE, result.output
    assert "Run the same command again" in " ".join(result.output.split())
    assert refs(project) == before  # no stage tag, no claim left behind
    assert f"refs/tags/{NAME}#canary#2" in refs(origin)
    result = cli(["promote", NAME, "v0.0.2", "--to", "staging", "--push"], cwd=project)
    assert result.exit_code == 0, result.output
    assert f"refs/tags/{NAME}#staging#3" in refs(origin)
    counters = [r.rsplit("#", 1)[1] for r in refs(origin) if "#staging#" in r or "#canary#" in r]
    assert sorted(counters) == ["1", "2", "3"]


def test_two_promotions_at_once_never_share_a_counter(project: Path, tmp_path: Path):
    pipe = project / "pipeline.yaml"
    pipe.write_text(pipe.read_text() + "  canary:\n    track: latest\n")
    commit_all(project, "canary")
    register_by_hand(project, "v0.0.1")
    origin = origin_for(project, tmp_path)
    git(project, "push", "-q", "origin", "--tags")
    clones = []
    for i in range(2):
        clone = tmp_path / f"clone{i}"
        git(tmp_path, "clone", "-q", str(origin), str(clone))
        clones.append(clone)
    results: dict[int, subprocess.CompletedProcess] = {}
    start = threading.Barrier(2)

    def promote(i: int, env: str) -> None:
        start.wait()
        results[i] = subprocess.run(
            [sys.executable, "-m", "mlops", "promote", NAME, "v0.0.1", "--to", env, "--push"],
            cwd=clones[i],
            capture_output=True,
            text=True,
        )

    threads = [threading.Thread(target=promote, args=(0, "staging")),
               threading.Thread(target=promote, args=(1, "canary"))]  # fmt: skip
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, res in results.items():
        assert res.returncode in (0, ExitCode.GIT_STATE), res.stderr
        if res.returncode:  # lost the race: nothing left behind, and a retry works
            assert not [r for r in refs(clones[i]) if "#staging#" in r or "#canary#" in r]
            env = "staging" if i == 0 else "canary"
            retry = subprocess.run(
                [sys.executable, "-m", "mlops", "promote", NAME, "v0.0.1", "--to", env, "--push"],
                cwd=clones[i],
                capture_output=True,
                text=True,
            )
            assert retry.returncode == 0, retry.stderr
    events = [r for r in refs(origin) if "#staging#" in r or "#canary#" in r]
    assert len(events) == 2
    counters = [r.rsplit("#", 1)[1] for r in events]
    assert len(set(counters)) == 2


# ---- rollback and desired state --------------------------------------------------------


def test_rollback_of_a_tag_env_goes_back_step_by_step(project: Path, cli, when):
    for i, version in enumerate(("v0.0.1", "v0.0.2", "v0.0.3")):
        when(i)
        register_by_hand(project, version)
    for i, version in enumerate(("v0.0.1", "v0.0.2", "v0.0.3")):
        when(10 + i)
        assert cli(["promote", NAME, version, "--to", "staging"], cwd=project).exit_code == 0
    when(20)
    result = cli(["rollback", "--env", "staging", "--json"], cwd=project)
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert (out["version"], out["rollback_from"]) == ("v0.0.2", "v0.0.3")
    assert "rollback-from: v0.0.3" in git(project, "tag", "-l", "--format=%(contents)", out["tag"])
    when(21)
    out = json.loads(cli(["rollback", "--env", "staging", "--json"], cwd=project).output)
    assert out["version"] == "v0.0.1"
    when(22)
    result = cli(["rollback", "--env", "staging"], cwd=project)
    assert result.exit_code == ExitCode.GIT_STATE
    assert "nothing to roll back to" in result.output
    history = json.loads(cli(["registry", "history", NAME, "--json"], cwd=project).output)
    assert [e["version"] for e in history if e["stage"] == "staging"] == [
        "v0.0.1",
        "v0.0.2",
        "v0.0.3",
        "v0.0.2",
        "v0.0.1",
    ]


def test_rollback_of_a_pinned_env_uses_the_pin_history(project: Path, tmp_path: Path, cli):
    register_by_hand(project, "v0.0.1")
    register_by_hand(project, "v0.0.2")
    (project / "deploy").mkdir()
    for version in ("v0.0.1", "v0.0.2"):  # two merged promotions
        (project / "deploy/production.yaml").write_text(f"model: {NAME}\nversion: {version}\n")
        commit_all(project, f"Promote {version}")
    origin = origin_for(project, tmp_path)
    result = cli(["rollback", "--env", "production", "--json"], cwd=project)
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert (out["version"], out["rollback_from"], out["mode"]) == (
        "v0.0.1",
        "v0.0.2",
        "merge_request",
    )
    assert out["title"] == f"Roll back production to {NAME} v0.0.1 (from v0.0.2)"
    message = git(origin, "log", "-1", "--format=%B", out["branch"])
    assert "Mlops-Rollback-From: v0.0.2" in message
    assert git(origin, "show", f"{out['branch']}:deploy/production.yaml").endswith("v0.0.1")


def test_desired_state_of_tracking_and_pinned_envs(project: Path, cli, when):
    when(0)
    register_by_hand(project, "v0.0.1")
    when(1)
    register_by_hand(project, "v0.0.2")
    when(2)
    register_by_hand(project, "v0.0.3", blessed=False)  # registered with --force
    d = api.desired(project, "staging")
    assert (d.version, d.mode, d.source) == ("v0.0.2", "track", "latest blessed version")
    when(3)
    assert cli(["promote", NAME, "v0.0.1", "--to", "staging"], cwd=project).exit_code == 0
    d = api.desired(project, "staging")  # an explicit promotion after the latest registration
    assert (d.version, d.current) == ("v0.0.1", "v0.0.1")
    when(4)
    register_by_hand(project, "v0.0.4")
    assert api.desired(project, "staging").version == "v0.0.4"  # a new version moves it on
    assert api.desired(project, "production").version is None  # no pin file yet
    (project / "deploy").mkdir()
    pin = project / "deploy/production.yaml"
    pin.write_text(f"model: {NAME}\nversion: v0.0.2\n")
    d = api.desired(project, "production")
    assert (d.version, d.mode, d.tag) == ("v0.0.2", "pin", f"{NAME}@v0.0.2")
    pin.write_text(f"model: {NAME}\nversion: v5.0.0\n")
    with pytest.raises(Exception, match="not registered") as info:
        api.desired(project, "production")
    assert info.value.exit_code == ExitCode.GIT_STATE
    pin.write_text(f"model: {NAME}\nversion: latest\ncolour: red\n")
    with pytest.raises(Exception, match=r"production\.yaml:2: version") as info:
        api.desired(project, "production")
    assert info.value.exit_code == ExitCode.USAGE
    assert "colour: unknown key" in str(info.value)


def test_registry_show_and_history_print_tables(project: Path, cli, monkeypatch):
    monkeypatch.setenv("COLUMNS", "160")  # a wide terminal (narrow ones fold the cells)
    register_by_hand(project, "v0.0.1")
    register_by_hand(project, "v0.0.2", blessed=False)
    assert cli(["promote", NAME, "v0.0.1", "--to", "staging"], cwd=project).exit_code == 0
    out = cli(["registry", "show"], cwd=project).output
    assert "staging" in out and "v0.0.2" in out and "latest blessed" in out
    out = cli(["registry", "show", NAME], cwd=project).output
    assert "v0.0.1" in out and "staging" in out and "accuracy=0.9" in out
    versions = json.loads(cli(["registry", "show", NAME, "--json"], cwd=project).output)
    assert [(v["version"], v["blessed"]) for v in versions] == [("v0.0.2", False), ("v0.0.1", True)]
    assert versions[1]["stages"] == ["staging"]
    out = cli(["registry", "history", "-n", "1"], cwd=project).output
    assert "assignment" in out and f"{NAME}#staging#1" in out
    result = cli(["registry", "show", "nope"], cwd=project)
    assert result.exit_code == ExitCode.GIT_STATE and "mlops register" in result.output

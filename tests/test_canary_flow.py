"""A canary release end to end on real registered versions (real git, DVC, GTO, scikit-learn,
a real server): `mlops deploy --canary`, the ENV-canary stage seen by `mlops envs`,
`registry show` and gto, traffic judged by `mlops canary --act` (promoted one step), the
last step making the candidate live; a shadow started and aborted."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from mlops.deploy.canary import RECORD_FILE
from mlops.serve.log import LogLimits
from mlops.serve.service import ServeConfig
from tests.canary_helpers import wait_for
from tests.helpers import commit_all
from tests.registry_helpers import NAME, gto_state, mlops_state
from tests.serve_helpers import FEATURES, ThreadServer, penguins
from tests.test_deploy import _released_template, released  # noqa: F401  (fixtures)

pytestmark = pytest.mark.slow


def run(cli, root: Path, *args: str, code: int = 0) -> dict:
    result = cli([*args, "--json"], cwd=root)
    assert result.exit_code == code, result.output
    return json.loads(result.output)


def test_canary_is_staged_judged_stepped_and_promoted(cli, released: Path):  # noqa: F811
    root = released
    pipe = root / "pipeline.yaml"
    pipe.write_text(pipe.read_text() + "canary:\n  steps: [20, 60, 100]\n  min_requests: 50\n")
    commit_all(root, "canary settings")
    assert (
        run(cli, root, "deploy", "--env", "staging", "--version", "v0.0.1")["action"] == "deployed"
    )

    started = run(cli, root, "deploy", "--env", "staging", "--canary", "20")
    assert started["action"] == "started" and started["version"] == "v0.0.2"
    assert started["stage_tag"].startswith(f"{NAME}#staging-canary#")
    target = root / ".mlops/envs/staging"
    record = json.loads((target / RECORD_FILE).read_text())
    assert record["percent"] == 20 and record["live"] == "v0.0.1" and record["dvc_md5"]
    assert (target / "current").resolve().name == "v0.0.1"  # live did not change
    # the stage of its own, as gto and mlops read it
    assert gto_state(root)[NAME]["stage"]["staging-canary"] == "v0.0.2"
    assert mlops_state(cli, root)[NAME]["stage"]["staging-canary"] == "v0.0.2"
    staging = next(e for e in run(cli, root, "envs") if e["env"] == "staging")
    assert staging["release"]["percent"] == 20 and staging["live"] == "v0.0.1"
    # a second release while one is in progress is refused
    assert cli(["deploy", "--env", "staging", "--shadow"], cwd=root).exit_code == 5

    # real traffic through a server following the target, labelled
    server = ThreadServer(
        ServeConfig(
            target=str(target),
            poll_seconds=0.05,
            log_dir=str(target / "predictions"),
            log_limits=LogLimits(flush_seconds=0.05),
        )
    )
    df = penguins().dropna(subset=FEATURES).reset_index(drop=True)
    try:
        wait_for(lambda: server.service.canary.release is not None)
        with httpx.Client(base_url=server.url) as client:
            roles = []
            for i, row in enumerate(df[FEATURES].to_dict("records")):
                r = client.post("/predict", json=[row], headers={"X-Request-ID": f"f{i}"})
                assert r.status_code == 200
                roles.append(r.headers["x-model-role"])
            labels = [{"request_id": f"f{i}", "label": y} for i, y in enumerate(df["species"])]
            assert client.post("/feedback", json=labels).status_code == 202
    finally:
        server.stop()
    assert 50 <= roles.count("canary") <= 100  # 20% of 342

    judged = run(cli, root, "canary", "--env", "staging", "--act")
    assert judged["decision"] == "promote", judged
    assert judged["action"]["action"] == "stepped" and judged["action"]["percent"] == 60
    # a new step, a new window: no evidence yet
    assert run(cli, root, "canary", "--env", "staging")["decision"] == "wait"
    # monitor shows the release against live too
    monitored = cli(["monitor", "--env", "staging", "--dry-run", "--json"], cwd=root)
    assert json.loads(monitored.output)["canary"]["candidate"] == "v0.0.2"

    done = run(cli, root, "promote-canary", "--env", "staging")
    assert done["action"] == "promoted" and done["percent"] == 100
    assert (target / "current").resolve().name == "v0.0.2"
    assert not (target / RECORD_FILE).exists()
    state = gto_state(root)[NAME]["stage"]
    assert state["staging"] == "v0.0.2" and "staging-canary" not in state
    assert done["unassigned"].startswith(f"{NAME}#staging-canary!#")
    events = [json.loads(x)["event"] for x in (target / "history.jsonl").read_text().splitlines()]
    assert events[-3:] == ["canary-start", "canary-step", "canary-promoted"]


def test_shadow_is_started_and_aborted(cli, released: Path):  # noqa: F811
    root = released
    run(cli, root, "deploy", "--env", "staging", "--version", "v0.0.1")
    started = run(cli, root, "deploy", "--env", "staging", "--shadow", "--version", "v0.0.2")
    assert started["mode"] == "shadow" and started["percent"] == 0
    assert started["stage_tag"].startswith(f"{NAME}#staging-shadow#")
    # a shadow promoted becomes a canary at the first step: the stages follow
    stepped = run(cli, root, "promote-canary", "--env", "staging")
    assert stepped["action"] == "stepped" and stepped["mode"] == "canary"
    assert stepped["percent"] == 10 and stepped["unassigned"].startswith(f"{NAME}#staging-shadow!#")
    stages = gto_state(root)[NAME]["stage"]
    assert stages["staging-canary"] == "v0.0.2" and "staging-shadow" not in stages
    assert run(cli, root, "abort-canary", "--env", "staging")["mode"] == "canary"
    assert "staging-canary" not in gto_state(root)[NAME]["stage"]
    started = run(cli, root, "deploy", "--env", "staging", "--shadow", "--version", "v0.0.2")
    aborted = run(cli, root, "abort-canary", "--env", "staging", "--reason", "disagrees")
    assert aborted["action"] == "aborted" and aborted["unassigned"]
    assert "staging-shadow" not in gto_state(root)[NAME]["stage"]
    target = root / ".mlops/envs/staging"
    assert not (target / RECORD_FILE).exists() and (target / "current").resolve().name == "v0.0.1"
    last = json.loads((target / "history.jsonl").read_text().splitlines()[-1])
    assert last["event"] == "shadow-aborted" and last["reason"] == "disagrees"
    # nothing in progress any more: promote and abort say so (exit 5)
    assert cli(["promote-canary", "--env", "staging"], cwd=root).exit_code == 5

"""A rollback of a pinned environment keeps git the source of truth; `mlops envs` shows the
registry's assignments (made by mlops or by `gto assign`)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.registry_helpers import NAME, gto, origin_for, refs
from tests.test_deploy import _released_template, deploy, pin, released  # noqa: F401


def test_deploy_rollback_opens_the_merge_request_that_pins_the_live_version(
    released: Path,  # noqa: F811
    tmp_path: Path,
    cli,
):
    pin(released, "v0.0.1")
    assert deploy(cli, released, "--env", "production")[0].exit_code == 0
    pin(released, "v0.0.2")
    assert deploy(cli, released, "--env", "production")[0].exit_code == 0
    origin = origin_for(released, tmp_path)
    # the CI template's manual job: mlops deploy --env production --rollback --push
    result, out = deploy(cli, released, "--env", "production", "--rollback", "--push")
    assert result.exit_code == 0, result.output
    assert (out["version"], out["rollback_from"]) == ("v0.0.1", "v0.0.2")
    request = out["merge_request"]
    assert request is not None and request["version"] == "v0.0.1"
    assert f"refs/heads/{request['branch']}" in refs(origin)
    log = (origin / "push-log.txt").read_text()
    assert "option: merge_request.create" in log and "option: merge_request.target=main" in log
    notes = " ".join(out["notes"])
    assert "for the pin's merge request" in notes and "Make it durable" not in notes
    assert f"refs/tags/{out['stage_tag']}" in refs(origin)
    # the branch pins the live version: merged, production is up to date again
    pinned = json.loads(cli(["envs", "--json"], cwd=released).output)
    production = next(e for e in pinned if e["env"] == "production")
    assert (production["live"], production["desired"]) == ("v0.0.1", "v0.0.2")  # until merged


def test_envs_table_shows_a_gto_assignment(released: Path, cli):  # noqa: F811
    gto(released, "assign", NAME, "--version", "v0.0.1", "--stage", "production")
    table = cli(["envs"], cwd=released).output
    row = next(line for line in table.splitlines() if line.startswith("production"))
    assert "stage tag" in table and "v0.0.1" in row
    data = json.loads(cli(["envs", "--json"], cwd=released).output)
    assert next(e for e in data if e["env"] == "production")["stage"] == "v0.0.1"

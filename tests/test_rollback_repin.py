"""Git stays the source of truth: a rollback of a pinned environment opens the merge request
that pins the live version; `mlops envs` shows the registry's assignments (made by mlops or by
`gto assign`); stage tags a killed deploy left local are pushed by the next deploy or promote."""

from __future__ import annotations

import json
from pathlib import Path

from tests.helpers import git
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


def test_stage_tags_left_local_are_pushed_by_the_next_deploy(
    released: Path,  # noqa: F811
    tmp_path: Path,
    cli,
):
    origin = origin_for(released, tmp_path)
    # what a deploy killed between writing its stage tag and pushing it leaves behind
    gto(released, "assign", NAME, "--version", "v0.0.1", "--stage", "production")
    left = next(t for t in git(released, "tag", "-l").split() if "#production#" in t)
    assert f"refs/tags/{left}" not in refs(origin)
    result, out = deploy(cli, released, "--env", "staging", "--push")
    assert result.exit_code == 0, result.output
    assert any(f"left local: {left}" in n for n in out["notes"]), out["notes"]
    assert f"refs/tags/{left}" in refs(origin)
    assert f"refs/tags/{NAME}@v0.0.1" in refs(origin)  # the version it names goes along
    # the same for a promote that pushes
    gto(released, "assign", NAME, "--version", "v0.0.2", "--stage", "qa")
    left = next(t for t in git(released, "tag", "-l").split() if "#qa#" in t)
    result = cli(["promote", NAME, "v0.0.1", "--to", "staging", "--push", "--json"], cwd=released)
    assert result.exit_code == 0, result.output
    assert any(f"left local: {left}" in n for n in json.loads(result.output)["notes"])
    assert f"refs/tags/{left}" in refs(origin)

"""What a command costs to start: only the command that runs is built, and values that need no
coercion never import pydantic (`mlops.cli._params`)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import pytest
import typer

from mlops.cli import _params, app
from tests.helpers import git

PROBE = """
import json, sys
from mlops.cli import main
try:
    main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
print(json.dumps({"pydantic": "pydantic" in sys.modules, "code": code}), file=sys.stderr)
"""


def _probe(cwd: Path, *args: str) -> tuple[dict, str]:
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, *args], cwd=cwd, capture_output=True, text=True, timeout=120
    )
    return json.loads(proc.stderr.strip().splitlines()[-1]), proc.stdout


def test_registry_show_imports_no_pydantic(tmp_path: Path):
    git(tmp_path, "init", "-q", "-b", "main")
    git(tmp_path, "commit", "-q", "--allow-empty", "-m", "start")
    git(tmp_path, "tag", "-a", "m@v0.0.1", "-m", "Registering artifact m version v0.0.1")
    state, out = _probe(tmp_path, "-C", str(tmp_path), "registry", "show", "--json")
    assert state == {"pydantic": False, "code": 0}
    assert json.loads(out)["m"]["version"] == "v0.0.1"
    state, out = _probe(tmp_path, "registry", "show", "m", "--json")
    assert state["code"] == 0 and not state["pydantic"]
    assert [v["version"] for v in json.loads(out)] == ["v0.0.1"]


@pytest.mark.parametrize(
    ("args", "word"),
    [
        (["registry", "show"], "registry"),
        (["-C", "d", "--traceback", "monitor", "--env", "x"], "monitor"),
        (["--directory=d", "-Cd", "run"], "run"),
        (["--help", "run"], None),
        (["--version"], None),
        (["-C"], None),
        ([], None),
        (["--unknown", "run"], None),
    ],
)
def test_command_word(args: list[str], word: str | None):
    assert _params.command_word(args) == word


def test_only_command_hides_the_others_and_restores_them():
    commands, groups = list(app.registered_commands), list(app.registered_groups)
    with _params.only_command(app, ["registry", "show"]):
        assert app.registered_commands == [] and [g.name for g in app.registered_groups] == [
            "registry"
        ]
    with _params.only_command(app, ["run", "--force"]):
        assert len(app.registered_commands) == 1 and app.registered_groups == []
    with _params.only_command(app, ["no-such-command"]):  # click's suggestions need them all
        assert app.registered_commands == commands
    assert app.registered_commands == commands and app.registered_groups == groups


def test_values_that_need_coercion_still_get_it():
    sub = typer.Typer()
    seen: dict = {}

    @sub.command()
    def go(
        count: Annotated[int, typer.Option("--count")] = 1,
        name: Annotated[str, typer.Option("--name")] = "x",
        where: Annotated[Path | None, typer.Option("--where")] = None,
    ) -> None:
        seen.update(count=count, name=name, where=where)

    from typer.testing import CliRunner

    result = CliRunner().invoke(sub, ["--count", "3", "--name", "y", "--where", "a/b"])
    assert result.exit_code == 0, result.output
    assert seen == {"count": 3, "name": "y", "where": Path("a/b")}
    bad = CliRunner().invoke(sub, ["--count", "three"])
    assert bad.exit_code == 2 and "--count" in bad.output and "integer" in bad.output

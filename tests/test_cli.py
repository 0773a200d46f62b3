"""The command line: help on every command, exit codes, JSON output, nothing written on errors."""

from __future__ import annotations

import json
from pathlib import Path

import typer.main

from mlops.cli import app
from mlops.cli._docs import _commands
from mlops.errors import ExitCode
from tests.helpers import replace_in


def all_commands() -> list[list[str]]:
    return _commands(typer.main.get_command(app), [])


def test_every_command_and_option_has_help_with_an_example(cli):
    root = typer.main.get_command(app)
    for path in all_commands():
        result = cli([*path, "--help"])
        assert result.exit_code == 0, path
        assert "Example:" in result.output, f"`mlops {' '.join(path)} --help` has no example"
        cmd = root
        for name in path:
            cmd = cmd.commands[name]
        for param in cmd.params:
            if param.param_type_name == "option":
                assert param.help, f"option {param.name} of {path} has no help"


def test_version(cli):
    result = cli(["--version"])
    assert result.exit_code == 0 and result.output.startswith("mlops ")


def test_bad_config_exits_2_lists_every_problem_and_writes_nothing(project: Path, cli):
    pipe = project / "pipeline.yaml"
    text = pipe.read_text()
    text = text.replace("  task: classification\n", "  task: classification\n  colour: red\n")
    text = text.replace("    with:\n      exclude: [year]", "    with:\n      exclude: year")
    text = text.replace(
        "input: data/raw/penguins.csv\n      schema:", "input: data/raw/nope.csv\n      schema:"
    )
    pipe.write_text(text)
    (project / "dvc.yaml").unlink()
    for args in (["check"], ["run"]):
        result = cli(args, cwd=project)
        assert result.exit_code == ExitCode.USAGE, result.output
        out = result.output
        assert "3 problems" in out
        assert "pipeline.yaml:8: model.colour: unknown key" in out
        assert "stages.train.with.exclude" in out and "valid list" in out
        assert "data/raw/nope.csv' does not exist" in out
    assert not (project / "dvc.yaml").exists()
    assert not (project / ".mlops" / "runs.db").exists()


def test_check_json_on_error_prints_structured_issues(project: Path, cli):
    pipe = project / "pipeline.yaml"
    replace_in(pipe, "version: 1", "version: 2")
    result = cli(["check", "--json"], cwd=project)
    assert result.exit_code == ExitCode.USAGE
    data = json.loads(result.output)
    assert data["exit_code"] == 2
    assert data["details"][0]["path"] == "version" and data["details"][0]["line"] == 3


def test_unknown_stage_is_a_usage_error(project: Path, cli):
    result = cli(["run", "nope"], cwd=project)
    assert result.exit_code == ExitCode.USAGE
    assert "unknown stage: nope" in result.output


def test_outside_a_project_says_what_to_do(tmp_path: Path, cli):
    result = cli(["run"], cwd=tmp_path)
    assert result.exit_code == ExitCode.USAGE
    assert "mlops init" in result.output


def test_compile_show_prints_dvc_yaml_without_writing(project: Path, cli):
    (project / "dvc.yaml").unlink()
    result = cli(["compile", "--show"], cwd=project)
    assert result.exit_code == 0
    assert "do not edit" in result.output and "artifacts:" in result.output
    assert not (project / "dvc.yaml").exists()

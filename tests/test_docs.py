"""Docs stay true: the CLI reference is generated, the exit-code table matches the code."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from mlops.cli._docs import render
from mlops.errors import ExitCode

ROOT = Path(__file__).resolve().parents[1]


def test_cli_reference_is_up_to_date():
    current = (ROOT / "docs" / "cli.md").read_text()
    assert current == render(), (
        "docs/cli.md is stale: run `python -m mlops.cli._docs > docs/cli.md`"
    )


def test_readme_exit_code_table_matches_the_code():
    readme = (ROOT / "README.md").read_text()
    rows = dict(re.findall(r"^\| (\d+) \| `?([a-z_ ]+?)`? \|", readme, flags=re.M))
    assert {int(k) for k in rows} == {int(c) for c in ExitCode}
    for code in ExitCode:
        assert rows[str(int(code))].replace(" ", "_") == code.name.lower()


def test_readme_opens_with_two_commands_and_ci_runs_the_second():
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```(?:bash|sh)\n(.*?)```", readme, flags=re.S)
    assert len(blocks) >= 2
    second = blocks[1].strip()
    ci = (ROOT / ".ci" / "run").read_text()
    assert second in ci, ".ci/run must call exactly the README's test command"


def test_layers_are_respected():
    lint = Path(sys.executable).parent / "lint-imports"
    proc = subprocess.run([str(lint)], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Contracts: 4 kept, 0 broken" in proc.stdout

"""Generate docs/cli.md from the commands' own `--help` (a test fails when the file is stale).

python -m mlops.cli._docs > docs/cli.md
"""

from __future__ import annotations

import os
import sys
from typing import Any

HEADER = """# CLI reference

Generated from each command's `--help` by `python -m mlops.cli._docs > docs/cli.md`;
`tests/test_docs.py` fails when this file is stale.
"""


def _commands(group: Any, path: list[str]) -> list[list[str]]:
    out = [path]
    for name, cmd in getattr(group, "commands", {}).items():
        if getattr(cmd, "hidden", False):
            continue
        out += _commands(cmd, [*path, name])
    return out


def render() -> str:
    """The whole Markdown reference."""
    import typer.main
    from typer.testing import CliRunner

    from mlops.cli import app

    os.environ["COLUMNS"] = "80"
    root = typer.main.get_command(app)
    runner = CliRunner()
    parts = [HEADER]
    for path in _commands(root, []):
        result = runner.invoke(app, [*path, "--help"], prog_name="mlops", env={"COLUMNS": "80"})
        title = " ".join(["mlops", *path])
        parts.append(f"\n## `{title}`\n\n```text\n{result.output.rstrip()}\n```\n")
    return "".join(parts)


if __name__ == "__main__":
    sys.stdout.write(render())

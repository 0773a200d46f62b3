"""The `mlops` console script: `mlops registry show` answers without loading typer or rich;
every other command, and anything unusual, runs the full CLI (`mlops.cli.main`).

`mlops registry show` at 1,500 tags is measured against `gto show` (docs/benchmarks.md), and
typer, click and rich cost about as much as reading the registry itself. The shortcut takes only
`registry show` and `registry show --json`, after at most one `-C DIR`; the JSON is what the
full command prints; the table only when stdout is not a terminal (rich would style it), rich
is not told to act as one (`FORCE_COLOR`, `TTY_COMPATIBLE`), the names are ASCII and the table
fits the width rich would use: then `mlops.rendering.text_table` writes the bytes rich would
(`tests/test_cli_entry.py` compares them). Anything else (an empty registry, an error, `--help`)
goes to the full CLI, which runs the command again (it only reads) and reports as always.
"""

from __future__ import annotations

import os
import sys

SHORTCUTS = {("registry", "show"): False, ("registry", "show", "--json"): True}
RUNNER_EARLY = {"--force", "-f", "--json"}  # `mlops run` options that start its runner first
RICH_TERMINAL_VARS = ("FORCE_COLOR", "TTY_COMPATIBLE")  # make rich style a pipe's output


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["run"] and {"--force", "-f"} & set(args) and set(args[1:]) <= RUNNER_EARLY:
        # the warm runner of a forced run, started before typer and the config load (issue 22)
        from mlops.api.runner import runner_start_early

        runner_start_early()
    if not _shortcut(args):
        from mlops.cli import main as cli_main

        cli_main(args)


def _shortcut(args: list[str]) -> bool:
    """Answer `args` here when it is a shortcut command and nothing unusual happens; False
    leaves the working directory as it was, for the full CLI."""
    directory = None
    if args[:1] in (["-C"], ["--directory"]) and len(args) > 2:
        directory, args = args[1], args[2:]
    as_json = SHORTCUTS.get(tuple(args))
    if as_json is None:
        return False
    cwd = None
    try:
        if directory is not None:
            cwd = os.getcwd()
            os.chdir(directory)
        text = _registry_show(as_json)
    except Exception:  # the full CLI runs it again and reports the error as always
        text = None
    if text is None:
        if cwd is not None:
            os.chdir(cwd)
        return False
    sys.stdout.write(text)
    sys.stdout.flush()
    return True


def _registry_show(as_json: bool) -> str | None:
    """What `mlops registry show [--json]` prints, or None when the full CLI must answer."""
    from mlops import api

    registry = api.registry_show(".")
    if as_json:
        import json

        from mlops.adapters.secrets import mask

        return mask(json.dumps(registry.to_dict(), indent=2, default=str)) + "\n"  # _ui.print_json
    if not registry.artifacts or sys.stdout.isatty() or any(map(os.getenv, RICH_TERMINAL_VARS)):
        return None
    from mlops.rendering import text_table

    header, rows = api.registry_rows(registry)
    lines = text_table(header, [c if a else [f"{c[0]} (deprecated)", *c[1:]] for a, c in rows])
    if not all(line.isascii() for line in lines) or max(map(len, lines)) > _rich_width():
        return None
    return "".join(line + "\n" for line in lines)


def _rich_width() -> int:
    """The width rich gives a console that is not a terminal: a terminal's on stdin, stdout or
    stderr, else 80; `COLUMNS` overrides (rich.console.Console.size)."""
    width = 0
    for fd in (0, 1, 2):
        try:
            width = os.get_terminal_size(fd).columns
            break
        except (AttributeError, ValueError, OSError):
            continue
    columns = os.environ.get("COLUMNS")
    if columns is not None and columns.isdigit():
        width = int(columns)
    return width or 80

"""Start-up cost of a command: only its own command is built, and parameter values that need no
coercion skip typer's pydantic adapters.

typer builds the click command of every registered command before running one, resolving each
function's string annotations (two `eval`s per parameter: about 400 compilations for mlops'
commands); `only_command` hides the commands other than the one named on the command line while
it runs (`mlops --help`, a misspelt command or anything unusual still builds them all).

typer 0.29 coerces every parameter value through a pydantic `TypeAdapter`, built on first use,
and builds it even for a value of None; importing pydantic for that costs about 0.1 s of CPU on
every command (`python -X importtime`), a third of `mlops registry show`. A value that is None
(an option not given) or already a `str` for a plain `str` parameter (no parser, no choices)
is what typer's adapter would return unchanged, so it is returned as it is; every other value
(numbers, paths, choices, lists, bytes) goes through typer as before. Importing this module
installs the shortcut once.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from typer import _click
from typer.core import _TyperParameter

if TYPE_CHECKING:
    import typer

ROOT_FLAGS = ("--traceback",)  # the root's options without a value
ROOT_VALUED = ("-C", "--directory")  # and those with one

_typer_process_value = _TyperParameter.process_value


def _unchanged(param: _TyperParameter, value: Any) -> bool:
    """Whether typer's coercion would hand `value` back as it is."""
    if param.multiple or param.nargs != 1:
        return False
    if value is None:
        return True
    desc = param.type_descriptor
    return (
        desc.annotation is str
        and type(value) is str
        and desc.parameter_info.parser is None
        and desc.file_annotation is None
        and not desc.is_choice
    )


def process_value(self: _TyperParameter, ctx: Any, value: Any) -> Any:
    """typer's `process_value` (required check, then the callback) without the coercion that
    would leave `value` unchanged."""
    if not _unchanged(self, value):
        return _typer_process_value(self, ctx, value)
    if self.required and self.value_is_missing(value):
        raise _click.exceptions.MissingParameter(ctx=ctx, param=self)
    if self.callback is not None:
        value = self.callback(ctx, self, value)
    return value


if getattr(_TyperParameter.process_value, "__module__", "") != __name__:
    _TyperParameter.process_value = process_value  # type: ignore[method-assign]


def command_word(args: list[str]) -> str | None:
    """The command or group `args` names after the root's own options; None when anything else
    comes first (`--help`, `--version`, an unknown option) or no command is named."""
    i = 0
    while i < len(args):
        a = args[i]
        if a in ROOT_VALUED:
            i += 2
            continue
        if a in ROOT_FLAGS or a.startswith("--directory=") or (a.startswith("-C") and len(a) > 2):
            i += 1
            continue
        return None if a.startswith("-") else a
    return None


@contextmanager
def only_command(app: typer.Typer, args: list[str]) -> Iterator[None]:
    """While inside, `app` registers only the command or group `args` names (when it names
    exactly one); everything is restored on the way out."""
    from typer.main import get_command_name

    word = command_word(args)
    commands = [
        c
        for c in app.registered_commands
        if word is not None
        and (c.name or (get_command_name(c.callback.__name__) if c.callback else None)) == word
    ]
    groups = [g for g in app.registered_groups if word is not None and g.name == word]
    if len(commands) + len(groups) != 1:
        yield
        return
    saved = app.registered_commands, app.registered_groups
    app.registered_commands, app.registered_groups = commands, groups
    try:
        yield
    finally:
        app.registered_commands, app.registered_groups = saved

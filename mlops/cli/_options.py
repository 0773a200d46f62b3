"""The options many commands share, defined once (same flag, same help, same metavar)."""

from __future__ import annotations

from typing import Annotated

import typer

JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON on stdout.")]
RemoteOpt = Annotated[
    str, typer.Option("--remote", metavar="NAME", help="The git remote to push to.")
]
PushOpt = Annotated[
    bool, typer.Option("--push", help="Push the new tag to the git remote (safely; see help).")
]
PushAutoOpt = Annotated[
    bool | None,
    typer.Option(
        "--push/--no-push",
        help="Push what the command writes (commit, tags, run records). "
        "Default: when the remote exists.",
    ),
]
MessageOpt = Annotated[
    str | None, typer.Option("--message", "-m", help="A note to keep in the tag message.")
]

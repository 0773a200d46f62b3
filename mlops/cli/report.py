"""`mlops report`: the merge-request report (Markdown), optionally posted to GitLab."""

from __future__ import annotations

from typing import Annotated

import typer

from mlops.cli import _ui
from mlops.cli._options import JsonOpt


def report(
    vs: Annotated[
        list[str] | None,
        typer.Option(
            "--vs",
            metavar="BASELINE",
            help="Compare with this environment or git ref; repeat for more "
            "(default: production and the default branch).",
        ),
    ] = None,
    post: Annotated[
        bool,
        typer.Option(
            "--post",
            help="Create or update the merge request's report note (CI_API_V4_URL, "
            "CI_PROJECT_ID, CI_MERGE_REQUEST_IID, and a token in MLOPS_GITLAB_TOKEN).",
        ),
    ] = False,
    json: JsonOpt = False,
) -> None:
    """Report this branch's model for a merge request, in Markdown.

    Metrics of the work tree against production and the default branch (like `dvc metrics
    diff --md`), the params that differ, data validation and drift, every quality gate, the
    confusion matrix and plots, and the whole evaluation report folded. Reads what the last
    `mlops run` wrote. --post keeps one note per merge request (found again by a hidden
    marker) up to date; the token is never printed. Exit 2 when --post lacks a variable.

    Example: mlops run; mlops report --post
    """
    from mlops import api

    _ui.set_json(json)
    result = api.report(".", vs, post=post)
    if json:
        _ui.print_json(result.to_dict())
    else:
        typer.echo(result.markdown, nl=False)  # raw Markdown: no wrapping, no markup
    if result.posted and not json:
        p = result.posted
        _ui.err().print(
            f"[green]{p['action']}[/] note {p['note_id']} on merge request !{p['merge_request']}"
        )


def register(app: typer.Typer) -> None:
    """Add `mlops report` to the app."""
    app.command("report")(report)

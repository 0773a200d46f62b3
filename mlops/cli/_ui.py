"""Terminal output: consoles, tables, JSON, and the rendering of errors."""

from __future__ import annotations

import json
import os
import sys
from typing import TYPE_CHECKING, Any

from mlops.adapters.secrets import mask
from mlops.errors import ConfigError, MlopsError

if TYPE_CHECKING:  # rich loads on first output, not at start-up (`mlops --help` stays fast)
    from rich.console import Console
    from rich.table import Table

_state: dict[str, Any] = {"json": False, "traceback": False}


def set_json(enabled: bool) -> None:
    """Commands given `--json` call this, so errors come out as JSON on stdout too."""
    _state["json"] = enabled


def json_mode() -> bool:
    return bool(_state["json"])


def set_traceback(enabled: bool) -> None:
    _state["traceback"] = enabled


def traceback_wanted() -> bool:
    return bool(_state["traceback"]) or os.environ.get("MLOPS_TRACEBACK") == "1"


def out() -> Console:
    """Results (tables, JSON) go to stdout."""
    from rich.console import Console

    return Console(file=sys.stdout, soft_wrap=False, highlight=False)


def err() -> Console:
    """Progress, warnings and errors go to stderr."""
    from rich.console import Console

    return Console(file=sys.stderr, highlight=False, soft_wrap=True)


def progress_console() -> Console:
    """A console on a duplicate of stderr's file descriptor.

    While DVC runs, mlops points fds 1 and 2 at per-stage log files; a console on a copy of the
    original descriptor keeps showing progress on the terminal meanwhile.
    """
    try:
        fd = os.dup(sys.stderr.fileno())
    except (OSError, ValueError, AttributeError):  # not a real file (e.g. under a test runner)
        return err()
    from rich.console import Console

    stream = os.fdopen(fd, "w", buffering=1, encoding="utf-8", errors="replace")
    return Console(file=stream, highlight=False, force_terminal=sys.stderr.isatty() or None)


def print_json(data: Any) -> None:
    """JSON on stdout, secrets masked (a stage's output tail may quote one)."""
    sys.stdout.write(mask(json.dumps(data, indent=2, default=str)) + "\n")
    sys.stdout.flush()


def table(*columns: str, title: str | None = None) -> Table:
    from rich.table import Table

    t = Table(title=title, title_justify="left", header_style="bold", box=None, pad_edge=False)
    for c in columns:
        t.add_column(c)
    return t


def drift_table(rows: list[tuple[str, str, str, str, str, bool]], title: str) -> Table:
    """One drift comparison (`mlops.api.drift_rows`): validate's and monitor's table."""
    t = table("column", "type", "method", "score", "drift when", "drifted", title=title)
    for *cells, drifted in rows:
        t.add_row(*cells, "[bold red]yes[/]" if drifted else "no")
    return t


def fmt_seconds(s: float | None) -> str:
    if s is None:
        return "-"
    return f"{s * 1000:.0f}ms" if s < 1 else f"{s:.1f}s"


def fmt_value(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return "-" if v is None else str(v)


def render_error(exc: MlopsError) -> None:
    """The one rendering of an expected failure: message, then what to do next."""
    if json_mode():
        print_json(exc.to_dict())
        return
    console = err()
    if isinstance(exc, ConfigError):
        console.print(f"[bold red]error:[/] {mask(exc.message.splitlines()[0])}")
        for issue in exc.issues:
            console.print(f"  {mask(str(issue))}", markup=False)
    else:
        console.print("[bold red]error:[/] ", end="")
        console.print(mask(exc.message), markup=False)
    if exc.hint:
        console.print("[bold]hint:[/] ", end="")
        console.print(mask(exc.hint), markup=False)


def print_traceback(exc: BaseException) -> None:
    """With `--traceback` (or MLOPS_TRACEBACK=1): the full traceback on stderr, masked; the
    caller still exits with the error's own code."""
    if not traceback_wanted():
        return
    import traceback

    sys.stderr.write(mask("".join(traceback.format_exception(exc))))
    sys.stderr.flush()


def unwritable(exc: BaseException) -> MlopsError | None:
    """A refused write (permission denied, read-only file system) as an exit-5 error with what
    to do, or None for any other exception."""
    import errno

    if not isinstance(exc, OSError) or exc.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
        return None
    from mlops.errors import GitStateError

    where = f": {exc.filename}" if exc.filename else ""
    return GitStateError(
        f"{(exc.strerror or 'permission denied').lower()}{where}",
        "Make it readable and writable by this user (mlops keeps its state in .mlops/ of the "
        "project), or run where you can write.",
    )


def render_unexpected(exc: BaseException) -> None:
    msg = mask(f"{type(exc).__name__}: {exc}")  # an exception's text may quote a server or git
    if json_mode():
        print_json({"error": "UnexpectedError", "message": msg, "exit_code": 1})
        return
    console = err()
    console.print("[bold red]unexpected error:[/] ", end="")
    console.print(msg, markup=False)
    console.print("Run again with `mlops --traceback ...` for the full traceback, and report it.")

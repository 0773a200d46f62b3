"""`mlops run`: live progress per stage, then a summary table."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Annotated

import typer

from mlops.cli import _ui
from mlops.cli._options import JsonOpt

if TYPE_CHECKING:
    from rich.console import Console, Group
    from rich.text import Text

    from mlops.api import RunResult, StageEvent

STYLE = {
    "ran": "green",
    "cached": "green",
    "skipped": "dim",
    "failed": "bold red",
    "not run": "dim",
    "would run": "cyan",
}
MARK = {"ran": "✓", "cached": "✓", "skipped": "·", "failed": "✗", "not run": " ", "would run": "→"}


class Progress:
    """Renders stage events: a live view on a terminal, one line per stage elsewhere (CI logs)."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.rows: dict[str, tuple[str, float, float | None]] = {}  # name -> status, start, secs
        self.live = None
        if console.is_terminal:
            from rich.live import Live

            self.live = Live(self._render(), console=console, refresh_per_second=8, transient=True)
            self.live.start()

    def _render(self) -> Group:
        from rich.console import Group
        from rich.spinner import Spinner
        from rich.text import Text

        lines: list[Spinner | Text] = []
        for name, (status, start, secs) in self.rows.items():
            if status == "running":
                spinner = Spinner(
                    "dots", text=Text(f"{name}  running {time.perf_counter() - start:.1f}s")
                )
                lines.append(spinner)
            else:
                lines.append(self._line(name, status, secs))
        return Group(*lines)

    @staticmethod
    def _line(name: str, status: str, secs: float | None) -> Text:
        from rich.text import Text

        text = Text(f"{MARK.get(status, ' ')} {name}  {status}", style=STYLE.get(status, ""))
        if secs:
            text.append(f"  {_ui.fmt_seconds(secs)}", style="dim")
        return text

    def __call__(self, ev: StageEvent) -> None:
        if ev.phase == "start":
            self.rows[ev.stage] = ("running", time.perf_counter(), None)
        else:
            self.rows[ev.stage] = (ev.status, 0.0, ev.seconds)
            if self.live is None:
                self.console.print(self._line(ev.stage, ev.status, ev.seconds))
        if self.live is not None:
            self.live.update(self._render())

    def stop(self) -> None:
        if self.live is not None:
            self.live.stop()


def summary(result: RunResult) -> None:
    console = _ui.out()
    t = _ui.table("stage", "status", "duration", "metrics", title=f"run {result.record.id}")
    for s in result.stages:
        shown = "  ".join(f"{k}={_ui.fmt_value(v)}" for k, v in list(s.metrics.items())[:4])
        t.add_row(
            s.name,
            f"[{STYLE.get(s.status, '')}]{s.status}[/]",
            _ui.fmt_seconds(s.seconds or None),
            shown,
        )
    console.print(t)
    if result.gates:
        g = _ui.table(
            "metric", "rule", "threshold", "value", "margin", "result", title="quality gates"
        )
        for gate in result.gates:
            res = "[green]pass[/]" if gate.passed else "[bold red]FAIL[/]"
            g.add_row(
                gate.metric,
                gate.rule,
                _ui.fmt_value(gate.threshold),
                _ui.fmt_value(gate.value),
                _ui.fmt_value(gate.margin),
                res + (f" ({gate.note})" if gate.note else ""),
            )
        console.print(g)
    if result.fast:
        _ui.err().print("[dim]nothing changed since the last run (checked without starting DVC)[/]")


def run(
    stages: Annotated[
        list[str] | None, typer.Argument(help="Stages to run (with what they need).")
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", "-f", help="Rerun even unchanged stages.")
    ] = False,
    dry: Annotated[bool, typer.Option("--dry", help="Show what would run; run nothing.")] = False,
    json: JsonOpt = False,
    commit: Annotated[
        bool,
        typer.Option(
            "--commit", help="After a successful run, push data to the DVC remote and commit."
        ),
    ] = False,
    if_new_data: Annotated[
        bool,
        typer.Option(
            "--if-new-data",
            help="Only when the ingest source has new data; then also commit, register and "
            "deploy staging (`mlops watch`).",
        ),
    ] = False,
) -> None:
    """Run the pipeline through DVC, skipping unchanged stages.

    Compiles pipeline.yaml into dvc.yaml, then reproduces it. Unchanged stages are skipped
    (DVC's cache); a changed dependency, param or command reruns its stage and everything
    downstream. Every run is recorded (`mlops runs list`). A failing stage stops the run and
    leaves dvc.lock and earlier outputs as they were.

    Exit codes: 3 invalid data (validate), 4 a quality gate failed, 8 a stage command failed.
    With --commit, a successful run is committed like `mlops commit` does (nothing is
    committed after a failure).

    Example: mlops run train --force
    """
    if if_new_data:
        from mlops.cli.watch import run_watch

        run_watch(json=json)
        return
    from mlops import api

    _ui.set_json(json)
    engine = None
    progress = None if json else Progress(_ui.progress_console())
    try:
        result = None
        if not force and not dry:
            # the no-op path first: it needs neither the config models nor DVC, whose imports
            # would cost more than the whole check (docs/architecture.md, "How mlops run works")
            result = api.quick_run(".", stages or None, on_event=progress)
        if result is None:
            from mlops.api import runner_session as session

            # a warm runner for the built-in stages while this command runs (issue 22), started
            # first so that its imports overlap the config check and DVC's start-up; only when
            # two or more built-in stages will run, never for a dry run nor `engine: dask`
            with session(".", enabled=not dry, targets=stages, force=force):
                if not dry and api.check(".").pipeline.engine.kind == "dask":
                    # fail fast when the cluster is unreachable; say where to watch the stages
                    engine = api.engine(".", connect_local=False)
                    if progress is not None:
                        progress.console.print(engine.line(), markup=False, soft_wrap=True)
                result = api.run(".", stages or None, force=force, dry=dry, on_event=progress)
    finally:
        if progress is not None:
            progress.stop()
    committed = None
    if commit and result.error is None and not dry:
        committed = api.commit(".")
    if json:
        out = result.to_dict()
        if engine is not None:
            out["engine"] = engine.to_dict()
        if committed is not None:
            out["commit"] = committed.to_dict()
        _ui.print_json(out)
        if result.error is not None:
            raise typer.Exit(int(result.error.exit_code))
        return
    summary(result)
    if committed is not None:
        from mlops.cli.registry import _print_commit

        _print_commit(committed)
    if result.error is not None:
        raise result.error


def register(app: typer.Typer) -> None:
    app.command("run")(run)

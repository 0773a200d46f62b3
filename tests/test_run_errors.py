"""Every failure says why: `mlops run` shows a stage's own error and keeps it in the stage's log.

One test per kind of failure: an exception in a built-in stage, a built-in's configuration
error, a `cmd:` stage exiting non-zero, DVC stopping a stage before or after its command, and a
missing dependency file. Real git, real DVC, real stage processes.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from mlops.errors import ExitCode
from mlops.pipeline.outcome import LOG_ROOT
from mlops.pipeline.records import RunStore
from tests.helpers import replace_in

pytestmark = pytest.mark.slow


def add_stage(root: Path, text: str) -> None:
    """Insert stage definitions (YAML, indented under `stages:`) before `environments:`."""
    pipe = root / "pipeline.yaml"
    replace_in(pipe, "environments:", text + "environments:", 1)


def failed_log(root: Path, stage: str) -> str:
    """The log of `stage` in the latest run record: it must hold the reason too."""
    record = RunStore(root).get("latest")
    row = next(s for s in record.stages if s["name"] == stage)
    assert row["status"] == "failed"
    return (root / LOG_ROOT / record.id / f"{stage}.log").read_text()


def test_exception_in_a_builtin_stage_shows_its_type_and_message(project: Path, cli):
    # a Parquet source that is not Parquet: the ingest stage dies of pyarrow's own error
    # (CSV sources are sniffed first and refused as data, exit 3; Parquet is not yet)
    (project / "data/source/penguins.parquet").write_bytes(b"PAR1" + b"\x00garbage" * 50)
    pipe = project / "pipeline.yaml"
    text = pipe.read_text()
    assert "data/source/penguins.csv" in text
    pipe.write_text(text.replace("data/source/penguins.csv", "data/source/penguins.parquet", 1))
    result = cli(["run", "ingest"], cwd=project)
    assert result.exit_code == ExitCode.STAGE_FAILED, result.output
    assert "ArrowInvalid" in result.output
    log = failed_log(project, "ingest")
    assert "Traceback" in log and "ArrowInvalid" in log


def test_builtin_configuration_error_is_shown(project: Path, cli):
    pipe = project / "pipeline.yaml"
    replace_in(
        pipe,
        "      output: data/raw/penguins.csv\n",
        "      output: data/raw/penguins.csv\n      span: {column: year, from: 2050}\n",
        1,
    )
    result = cli(["run", "ingest"], cwd=project)
    assert result.exit_code == ExitCode.USAGE, result.output
    assert "no rows left from data/source/penguins.csv after selecting the span" in result.output
    assert "no rows left" in failed_log(project, "ingest")


def test_cmd_stage_exit_shows_its_stderr_tail(project: Path, cli):
    add_stage(
        project,
        "  custom:\n"
        "    cmd: python -c \"import sys; print('step 1 of 2'); "
        "sys.stderr.write('disk quota exceeded writing out.txt\\\\n'); sys.exit(5)\"\n"
        "    deps: [data/source/penguins.csv]\n    outs: [reports/out.txt]\n",
    )
    result = cli(["run", "custom"], cwd=project)
    assert result.exit_code == ExitCode.STAGE_FAILED, result.output
    assert "exit status 5" in result.output
    assert "disk quota exceeded writing out.txt" in result.output
    assert "step 1 of 2" in result.output
    log = failed_log(project, "custom")
    assert "disk quota exceeded" in log and "exited with 5" in log


def test_dvc_failing_before_the_command_says_why(project: Path, cli):
    """DVC hashes a stage's params before running it; a YAML date in a params file it tracks
    stops it there ("Object of type date is not JSON serializable"), with an empty output."""
    (project / "dates.yaml").write_text("start: 2012-01-01\n")
    add_stage(
        project,
        "  custom:\n    cmd: python -c \"open('reports/out.txt', 'w').write('x')\"\n"
        "    deps: [data/source/penguins.csv]\n    params: [{dates.yaml: [start]}]\n"
        "    outs: [reports/out.txt]\n",
    )
    result = cli(["run", "custom"], cwd=project)
    assert result.exit_code == ExitCode.STAGE_FAILED, result.output
    assert "Object of type date is not JSON serializable" in result.output
    assert "Object of type date is not JSON serializable" in failed_log(project, "custom")


def test_dvc_failing_after_the_command_says_why(project: Path, cli):
    add_stage(
        project,
        "  custom:\n    cmd: python -c \"print('forgot to write it')\"\n"
        "    deps: [data/source/penguins.csv]\n    outs: [reports/never.txt]\n",
    )
    result = cli(["run", "custom"], cwd=project)
    assert result.exit_code == ExitCode.STAGE_FAILED, result.output
    assert "reports/never.txt" in result.output and "does not exist" in result.output
    log = failed_log(project, "custom")
    assert "forgot to write it" in log and "reports/never.txt" in log


def test_missing_dependency_file_inside_an_upstream_output(project: Path, cli):
    """The upstream stage runs but does not write the file the next stage reads."""
    add_stage(
        project,
        "  make:\n    cmd: python -c \"import os; os.makedirs('build/parts', exist_ok=True); "
        "open('build/parts/a.csv', 'w').write('x')\"\n"
        "    deps: [data/source/penguins.csv]\n    outs: [build/parts]\n"
        "  use:\n    cmd: python -c \"print(open('build/parts/b.csv').read())\"\n"
        "    deps: [build/parts/b.csv]\n    outs: [reports/use.txt]\n",
    )
    result = cli(["run", "use"], cwd=project)
    assert result.exit_code == ExitCode.STAGE_FAILED, result.output
    assert "build/parts/b.csv" in result.output
    assert "build/parts/b.csv" in failed_log(project, "use")


def test_missing_dependency_file_is_a_config_error_before_anything_runs(project: Path, cli):
    add_stage(
        project,
        '  custom:\n    cmd: python -c "print(1)"\n'
        "    deps: [data/source/nowhere.csv]\n    outs: [reports/out.txt]\n",
    )
    result = cli(["run", "custom"], cwd=project)
    assert result.exit_code == ExitCode.USAGE, result.output
    assert "'data/source/nowhere.csv' does not exist and no stage produces it" in result.output
    assert "pipeline.yaml:" in result.output

"""The console script's shortcut (`mlops.entry`): `mlops registry show [--json]` prints exactly
what the full CLI prints, without loading typer or rich; anything else reaches the full CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import git

# Runs a main() in a fresh process; reports (on stderr's last line) what it loaded and its exit.
PROBE = """
import json, sys
from {module} import main
code = 0
try:
    main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
loaded = sorted(m for m in ("typer", "click", "rich", "pydantic") if m in sys.modules)
print(json.dumps({{"loaded": loaded, "code": code}}), file=sys.stderr)
"""


def _run(cwd: Path, module: str, *args: str, env: dict[str, str] | None = None):
    proc = subprocess.run(
        [sys.executable, "-c", PROBE.format(module=module), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )
    state = json.loads(proc.stderr.strip().splitlines()[-1])
    return state, proc.stdout, proc.stderr


def _tag(repo: Path, name: str, message: str) -> None:
    """An annotated tag, a second after the previous one (events are ordered by tagger time)."""
    _tag.n = getattr(_tag, "n", 0) + 1  # type: ignore[attr-defined]
    when = f"{1_700_000_000 + _tag.n} +0000"  # type: ignore[attr-defined]
    subprocess.run(
        ["git", "tag", "-a", name, "-m", message],
        cwd=repo,
        check=True,
        env={**os.environ, "GIT_COMMITTER_DATE": when},
    )


@pytest.fixture(scope="module")
def registry_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two models, stages, a deprecated model and a deregistered version, as GTO writes them."""
    repo = tmp_path_factory.mktemp("entry") / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    for i in range(3):
        git(repo, "commit", "-q", "--allow-empty", "-m", f"c{i}")
        _tag(repo, f"churn@v0.{i}.0", f"Registering artifact churn version v0.{i}.0")
        _tag(repo, f"fraud-model@v1.{i}.0", f"Registering artifact fraud-model version v1.{i}.0")
    _tag(repo, "churn#staging#1", "Assigning stage staging to artifact churn")
    _tag(repo, "fraud-model#production#2", "Assigning stage production to artifact fraud-model")
    _tag(repo, "fraud-model@v1.2.0!", "Deregistering artifact fraud-model version v1.2.0")
    git(repo, "commit", "-q", "--allow-empty", "-m", "old")
    _tag(repo, "old-model@v0.0.1", "Registering artifact old-model version v0.0.1")
    _tag(repo, "old-model@deprecated", "Deprecating artifact old-model")
    return repo


@pytest.mark.parametrize("args", [["registry", "show"], ["registry", "show", "--json"]])
def test_shortcut_prints_what_the_full_cli_prints(registry_repo: Path, args: list[str]):
    fast, fast_out, _ = _run(registry_repo, "mlops.entry", *args)
    full, full_out, _ = _run(registry_repo, "mlops.cli", *args)
    assert fast == {"loaded": [], "code": 0}  # neither typer, click, rich nor pydantic
    assert full["code"] == 0 and "typer" in full["loaded"]
    assert fast_out == full_out
    assert "old-model (deprecated)" in fast_out or '"old-model"' in fast_out
    # -C DIR from elsewhere: the same answer
    elsewhere, out, _ = _run(registry_repo.parent, "mlops.entry", "-C", str(registry_repo), *args)
    assert elsewhere["code"] == 0 and out == full_out


def test_a_table_too_wide_or_forced_to_a_terminal_goes_to_rich(registry_repo: Path):
    full = _run(registry_repo, "mlops.cli", "registry", "show", env={"COLUMNS": "30"})[1]
    state, out, _ = _run(registry_repo, "mlops.entry", "registry", "show", env={"COLUMNS": "30"})
    assert "rich" in state["loaded"] and out == full  # folded by rich, as before
    state, out, _ = _run(registry_repo, "mlops.entry", "registry", "show", env={"FORCE_COLOR": "1"})
    assert "rich" in state["loaded"] and "\x1b[" in out  # rich styles it


def test_errors_and_other_commands_reach_the_full_cli(tmp_path: Path, registry_repo: Path):
    # not a git repository: the full CLI's message and exit code
    state, out, err = _run(tmp_path, "mlops.entry", "registry", "show", "--json")
    full, full_out, _ = _run(tmp_path, "mlops.cli", "registry", "show", "--json")
    assert state["code"] == full["code"] == 5 and "typer" in state["loaded"]
    assert out == full_out and json.loads(out)["error"]
    # a directory that does not exist: the full CLI's usage error, from where it started
    state, _, err = _run(tmp_path, "mlops.entry", "-C", "missing", "registry", "show")
    assert state["code"] == 2 and "cannot enter missing" in err
    # an empty registry: the full CLI says so on stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    git(empty, "init", "-q", "-b", "main")
    state, out, err = _run(empty, "mlops.entry", "registry", "show")
    assert state["code"] == 0 and out == "" and "the registry is empty" in err
    # anything but the two shortcuts: typer
    for args in (["registry", "show", "churn"], ["registry", "show", "--help"], ["--version"]):
        state, out, _ = _run(registry_repo, "mlops.entry", *args)
        assert state["code"] == 0 and "typer" in state["loaded"] and out

"""Paths in pipeline.yaml stay inside the repository, symlinks resolved (issue 13, item 6).

Without this, an `outs` path through a symlinked directory let DVC delete a file outside the
repository. Refused at `mlops check`, hence before `mlops run` starts DVC.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mlops.config import load_project
from mlops.config.paths import escape
from mlops.errors import ConfigError
from tests.security.run_cli import mlops


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A directory outside the repository, holding a file nobody may delete."""
    d = tmp_path / "outside"
    d.mkdir()
    (d / "victim.txt").write_text("precious\n")
    return d


def _add_stage(project: Path, stage: str) -> None:
    text = (project / "pipeline.yaml").read_text()
    head, tail = text.split("environments:", 1)
    text = head.rstrip("\n") + "\n" + stage + "environments:" + tail
    (project / "pipeline.yaml").write_text(text)


ESCAPE = """\
  escape:
    cmd: python -c "open('{out}', 'w').write('overwritten')"
    deps: [data/source/penguins.csv]
    outs: [{out}]
"""


def _issues(project: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_project(project)
    return [str(i) for i in info.value.issues]


def test_outs_through_a_symlinked_directory_is_refused(project: Path, outside: Path) -> None:
    os.symlink(outside, project / "linked")
    _add_stage(project, ESCAPE.format(out="linked/victim.txt"))
    found = _issues(project)
    line = next(i for i in found if "stages.escape.outs[0]" in i)
    assert line.startswith("pipeline.yaml:")  # the file and line
    assert "outside the repository" in line and "symbolic link" in line
    assert str(outside.resolve()) in line


def test_dotdot_and_absolute_outs_are_refused(project: Path, outside: Path) -> None:
    _add_stage(project, ESCAPE.format(out="../outside/victim.txt"))
    assert any("stages.escape.outs[0]" in i and "'..'" in i for i in _issues(project))
    text = (project / "pipeline.yaml").read_text()
    (project / "pipeline.yaml").write_text(
        text.replace("../outside/victim.txt", str(outside / "victim.txt"))
    )
    assert any("stages.escape.outs[0]" in i and "absolute" in i for i in _issues(project))


def test_a_symlinked_file_as_output_is_refused(project: Path, outside: Path) -> None:
    os.symlink(outside / "victim.txt", project / "victim.txt")
    _add_stage(project, ESCAPE.format(out="victim.txt"))
    assert any("stages.escape.outs[0]" in i for i in _issues(project))


def test_deps_and_builtin_paths_are_checked(project: Path, outside: Path) -> None:
    (outside / "data.csv").write_text("a\n1\n")
    os.symlink(outside, project / "data" / "elsewhere")
    text = (project / "pipeline.yaml").read_text()
    text = text.replace("output: data/raw/penguins.csv", "output: data/elsewhere/raw.csv")
    (project / "pipeline.yaml").write_text(text)
    _add_stage(
        project,
        "  reader:\n    cmd: cat data/elsewhere/data.csv\n    deps: [data/elsewhere/data.csv]\n",
    )
    found = _issues(project)
    assert any("stages.ingest.with.output" in i for i in found), found
    assert any("stages.reader.deps[0]" in i and "dependency" in i for i in found), found


def test_a_symlinked_models_directory_is_refused(project: Path, outside: Path) -> None:
    os.symlink(outside, project / "models")
    found = _issues(project)
    assert any("models/penguins-classifier" in i and "symbolic link" in i for i in found)


def test_environment_targets(project: Path, tmp_path: Path) -> None:
    text = (project / "pipeline.yaml").read_text()
    (project / "pipeline.yaml").write_text(
        text.replace("target: .mlops/envs/staging", "target: ../envs/staging")
    )
    assert any("environments.staging.target" in i for i in _issues(project))
    # an absolute target is a deliberate place outside the repository: allowed
    (project / "pipeline.yaml").write_text(
        text.replace("target: .mlops/envs/staging", f"target: {tmp_path / 'srv' / 'staging'}")
    )
    load_project(project)


def test_urls_and_inside_paths_pass(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    os.symlink(tmp_path / "data", tmp_path / "alias")  # a link that stays inside
    assert escape(tmp_path, "alias/x.csv") is None
    assert escape(tmp_path, "s3://bucket/prefix/") is None
    assert escape(tmp_path, "s3:/bucket/prefix") is None  # as norm() leaves a URL
    assert escape(tmp_path, "data/landing/*.csv") is None
    assert escape(tmp_path, "../*.csv") is not None


@pytest.mark.slow
def test_run_deletes_nothing_outside_the_repository(project: Path, outside: Path) -> None:
    """The reported attack end to end: `mlops run` refuses before DVC removes any output."""
    os.symlink(outside, project / "linked")
    _add_stage(project, ESCAPE.format(out="linked/victim.txt"))
    res = mlops(["run", "escape"], project)
    assert res.code == 2, res.text
    assert "stages.escape.outs[0]" in res.err and "pipeline.yaml:" in res.err
    assert (outside / "victim.txt").read_text() == "precious\n"
    res = mlops(["check"], project)
    assert res.code == 2 and "outside the repository" in res.err

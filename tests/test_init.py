"""`mlops init`: a project that runs out of the box, and never overwrites by surprise."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlops import api
from mlops.errors import ExitCode


def test_init_scaffolds_git_dvc_remote_and_sample_data(tmp_path: Path, cli):
    dest = tmp_path / "new"
    result = cli(["init", str(dest)])
    assert result.exit_code == 0, result.output
    for rel in (
        "pipeline.yaml",
        "params.yaml",
        ".gitlab-ci.yml",
        "data/source/penguins.csv",
        "data/schema.yaml",
        "dvc.yaml",
        ".gitignore",
        ".dvc/config",
    ):
        assert (dest / rel).is_file(), rel
    assert (dest / ".git").is_dir()
    assert "url = ../.mlops/remote" in (dest / ".dvc/config").read_text()
    assert "/.mlops/" in (dest / ".gitignore").read_text()
    assert len((dest / "data/source/penguins.csv").read_text().splitlines()) == 345
    api.check(dest)


def test_init_refuses_to_overwrite_without_force(project: Path, cli):
    (project / "params.yaml").write_text("mine: 1\n")
    result = cli(["init", str(project)])
    assert result.exit_code == ExitCode.USAGE
    assert "params.yaml" in result.output and "--force" in result.output
    assert (project / "params.yaml").read_text() == "mine: 1\n"
    assert cli(["init", str(project), "--force"]).exit_code == 0
    assert "estimator" in (project / "params.yaml").read_text()


@pytest.mark.slow
def test_init_then_run_succeeds(tmp_path: Path, cli):
    dest = tmp_path / "fresh"
    assert cli(["init", str(dest)]).exit_code == 0
    result = cli(["run"], cwd=dest)
    assert result.exit_code == 0, result.output
    assert (dest / "models/penguins-classifier/model.skops").is_file()


def test_init_never_writes_the_bare_pypi_name_as_the_ci_install_spec(tmp_path: Path):
    """`mlops` on PyPI is another project: CI installs this mlops from where it came from, and an
    editable or local install (as here) leaves the spec empty with a note saying what to set."""
    result = api.init(tmp_path / "p")
    ci = (tmp_path / "p" / ".gitlab-ci.yml").read_text()
    assert 'MLOPS_PIP_SPEC: ""' in ci and "__MLOPS_PIP_SPEC__" not in ci
    assert any("MLOPS_PIP_SPEC" in n for n in result.notes)


def test_ci_install_spec_follows_where_mlops_came_from():
    from mlops.pipeline.scaffold import spec_from_direct_url

    git_info = {
        "url": "https://gitlab.example.com/tools/mlops.git",
        "vcs_info": {"vcs": "git", "commit_id": "abc123", "requested_revision": "v0.1.0"},
    }
    assert spec_from_direct_url(git_info, "0.1.0") == (
        "mlops[serve]@git+https://gitlab.example.com/tools/mlops.git@abc123"
    )
    archive = {"url": "https://example.com/mlops-0.1.0.tar.gz", "archive_info": {}}
    assert (
        spec_from_direct_url(archive, "0.1.0")
        == "mlops[serve]@https://example.com/mlops-0.1.0.tar.gz"
    )
    local = {"url": "file:///home/me/mlops", "dir_info": {"editable": True}}
    assert spec_from_direct_url(local, "0.1.0") == ""
    assert spec_from_direct_url(None, "0.1.0") == "mlops[serve]==0.1.0"

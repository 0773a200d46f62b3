"""Shared fixtures: a hermetic git identity, projects built in one call, a CLI runner."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mlops.cli import app
from tests.helpers import commit_all

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True, scope="session")
def hermetic_env(tmp_path_factory: pytest.TempPathFactory):
    """HOME with its own .gitconfig, so tests never read or write the developer's settings."""
    home = tmp_path_factory.mktemp("home")
    (home / ".gitconfig").write_text(
        "[user]\n\tname = Test User\n\temail = test@example.com\n"
        "[init]\n\tdefaultBranch = main\n[commit]\n\tgpgsign = false\n"
        "[tag]\n\tgpgsign = false\n"
    )
    saved = dict(os.environ)
    os.environ.update(
        HOME=str(home),
        GIT_CONFIG_NOSYSTEM="1",
        DVC_NO_ANALYTICS="1",
        MLOPS_TRACEBACK="0",
        XDG_CACHE_HOME=str(home / ".cache"),
    )
    for var in ("GIT_DIR", "GIT_WORK_TREE", "CI_COMMIT_TAG", "MLOPS_GITLAB_TOKEN", "GITLAB_CI",
                "MLOPS_TARGETS", "MLOPS_TARGET_STAGING", "MLOPS_TARGET_PRODUCTION"):  # fmt: skip
        os.environ.pop(var, None)
    # `import dvc` binds DVC's log handlers to the sys.stdout of that moment; if the first import
    # happened inside a CliRunner invocation, they would write to its closed stream afterwards
    import dvc  # noqa: F401

    yield home
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture
def cli():
    """Invoke the CLI in-process: `cli(["run"], cwd=path)` -> click Result (exit code, output)."""
    runner = CliRunner()

    def invoke(args: list[str], cwd: Path | None = None):
        argv = (["-C", str(cwd)] if cwd else []) + list(args)
        here = os.getcwd()
        try:
            return runner.invoke(app, argv, catch_exceptions=False, prog_name="mlops")
        finally:
            os.chdir(here)

    return invoke


@pytest.fixture(scope="session")
def _initialised_template(tmp_path_factory: pytest.TempPathFactory, hermetic_env) -> Path:
    from mlops import api

    root = tmp_path_factory.mktemp("template") / "project"
    api.init(root)
    commit_all(root, "Start project")
    return root


@pytest.fixture
def project(tmp_path: Path, _initialised_template: Path) -> Path:
    """A freshly initialised, committed project (not yet run)."""
    dest = tmp_path / "project"
    shutil.copytree(_initialised_template, dest, symlinks=True)
    return dest


@pytest.fixture(scope="session")
def _trained_template(
    tmp_path_factory: pytest.TempPathFactory, _initialised_template: Path
) -> Path:
    from mlops import api

    root = tmp_path_factory.mktemp("trained") / "project"
    shutil.copytree(_initialised_template, root, symlinks=True)
    result = api.run(root)
    assert result.error is None, result.error
    commit_all(root, "First run")
    return root


@pytest.fixture
def trained(tmp_path: Path, _trained_template: Path) -> Path:
    """A project whose pipeline has run once and whose results are committed."""
    dest = tmp_path / "trained"
    shutil.copytree(_trained_template, dest, symlinks=True)
    return dest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A test that uses the trained project ran a real pipeline: it is `slow`, marked or not."""
    for item in items:
        if "_trained_template" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The penguin classifier's bundle (trained in-process, no pipeline), once per module."""
    from tests.serve_helpers import build_bundle

    return build_bundle(tmp_path_factory.mktemp("bundle") / "penguins-classifier")


@pytest.fixture
def staged(project: Path, bundle: Path) -> Path:
    """The example project (initialised, not run) with `bundle` deployed to staging as v0.0.1."""
    from mlops.deploy.target import open_target

    target = open_target(project / ".mlops/envs/staging", create=True)
    target.install(bundle, "v0.0.1", name="penguins-classifier", commit="0" * 40)
    target.switch("v0.0.1")
    return project

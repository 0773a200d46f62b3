"""Exit codes that say what happened (issue 13, item 8).

A binary, empty or UTF-16 CSV is a data problem (3, one line), `--traceback` keeps the code, a
refused write is 5 with a hint, a failed push of `mlops commit` is 5. (A GitLab answer that is not
JSON is exit 2: tests/security/test_secrets.py, `test_report_post_through_the_cli_...`.)
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from mlops.cli import _ui
from mlops.deploy.target import open_target
from mlops.errors import DeployError, ExitCode
from tests.helpers import commit_all
from tests.security.run_cli import mlops

SOURCE = "data/source/penguins.csv"


def _bad_csv(kind: str, path: Path) -> None:
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "binary":
        path.write_bytes(bytes(range(256)) * 40)
    elif kind == "utf16":
        path.write_bytes(path.read_text(encoding="utf-8").encode("utf-16"))
    elif kind == "utf16-no-bom":
        path.write_bytes(path.read_text(encoding="utf-8").encode("utf-16-le"))
    elif kind == "latin1":
        path.write_bytes("island,name\nBiscoe,Ç\n".encode("latin-1"))


@pytest.mark.parametrize("kind", ["empty", "binary", "utf16", "utf16-no-bom", "latin1"])
def test_a_csv_that_is_not_csv_text_is_exit_3_in_one_line(project: Path, kind: str) -> None:
    _bad_csv(kind, project / SOURCE)
    res = mlops(["validate", SOURCE], project)
    assert res.code == ExitCode.DATA_VALIDATION, res.text
    assert "Traceback" not in res.text
    error = [ln for ln in res.err.splitlines() if ln.startswith("error:")]
    assert len(error) == 1 and "penguins.csv" in error[0], res.err


@pytest.mark.slow
def test_a_stage_reading_a_utf16_csv_is_exit_3(project: Path) -> None:
    _bad_csv("utf16", project / SOURCE)
    res = mlops(["run", "ingest"], project)
    assert res.code == ExitCode.DATA_VALIDATION, res.text
    assert "is UTF-16 text, not UTF-8" in res.err and "Traceback" not in res.err


def test_traceback_keeps_every_exit_code(project: Path) -> None:
    _bad_csv("empty", project / SOURCE)
    res = mlops(["--traceback", "validate", SOURCE], project)
    assert res.code == ExitCode.DATA_VALIDATION, res.text
    assert "Traceback (most recent call last)" in res.err and "DataValidationError" in res.err
    assert "error: " in res.err  # the message and hint too, after the traceback

    (project / "pipeline.yaml").write_text("version: 1\nstages: {}\nbogus: 1\n")
    res = mlops(["--traceback", "check"], project)
    assert res.code == ExitCode.USAGE and "Traceback" in res.err, res.text

    res = mlops(["check"], project, env={"MLOPS_TRACEBACK": "1"})
    assert res.code == ExitCode.USAGE and "Traceback" in res.err, res.text


def test_a_refused_write_is_exit_5_with_a_hint() -> None:
    """The CLI's mapping of a real `PermissionError` / read-only file system (as root, the
    tests cannot make a directory unwritable; the lock tests cover `.mlops/` end to end)."""
    for exc in (
        PermissionError(13, "Permission denied", ".mlops/runs/x.json"),
        OSError(30, "Read-only file system", "/srv/envs/staging/current"),
    ):
        err = _ui.unwritable(exc)
        assert err is not None and err.exit_code == ExitCode.GIT_STATE
        assert exc.filename in err.message and "writable" in err.hint
    assert _ui.unwritable(FileNotFoundError(2, "No such file")) is None


def test_a_refused_write_inside_a_deployment_target_is_exit_6(tmp_path: Path) -> None:
    target = open_target(tmp_path / "staging", create=True)
    with pytest.raises(DeployError) as info, target.lock():
        raise PermissionError(13, "Permission denied", str(target.root / "current"))
    assert info.value.exit_code == ExitCode.DEPLOY_FAILED
    assert "cannot write to the deployment target" in info.value.message


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_commit_whose_remote_push_fails_is_exit_5(trained: Path) -> None:
    """An S3 remote that cannot be reached: botocore's error (not DVC's) was exit 1."""
    pipeline = trained / "pipeline.yaml"
    port = _closed_port()
    text = pipeline.read_text().replace(
        "  url: .mlops/remote ",
        f"  url: s3://bucket/prefix\n  options: {{endpointurl: 'http://127.0.0.1:{port}'}}\n ",
    )
    pipeline.write_text(text)
    commit_all(trained, "S3 remote")
    env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing-secret"}
    assert mlops(["compile"], trained, env=env).code == 0  # configures DVC's remote
    res = mlops(["commit"], trained, env=env)
    assert res.code == ExitCode.GIT_STATE, res.text
    assert "could not push data and models to the DVC remote" in res.err
    assert "nothing was committed" in res.err

"""`mlops report`: the merge-request report from what a run wrote and from git, and `--post` to a
local stand-in for GitLab's API (which records the requests). The token never shows."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlops.adapters.gitlab import MARKER
from mlops.errors import ExitCode
from tests.gitlab_stub import GitLabStub
from tests.helpers import git, replace_in
from tests.registry_helpers import NAME

pytestmark = pytest.mark.slow  # every test here starts from the trained project

TOKEN = "glpat-very-secret-token-42"


@pytest.fixture
def gitlab(monkeypatch: pytest.MonkeyPatch):
    stub = GitLabStub(token=TOKEN).start()
    for key, value in stub.env(project="group/demo", mr="12").items():
        monkeypatch.setenv(key, value)
    yield stub
    stub.stop()


def edit_json(path: Path, **changes) -> None:
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data, indent=2))


@pytest.fixture
def branch(trained: Path) -> Path:
    return make_branch(trained)


def make_branch(trained: Path) -> Path:
    """A merge-request branch of the trained project: params changed, its run's files rewritten
    (lower accuracy, a failed gate, drift against the previous data)."""
    git(trained, "checkout", "-q", "-b", "feature")
    params = trained / "params.yaml"
    replace_in(params, "C: 1.0", "C: 0.05")
    edit_json(trained / "reports/metrics.json", accuracy=0.9, f1_macro=0.88)
    meta = trained / f"models/{NAME}/metadata.json"
    verdict = {"blessed": False, "gates": [
        {"metric": "accuracy", "rule": "min", "threshold": 0.9, "value": 0.9, "passed": True},
        {"metric": "f1_macro", "rule": "min", "threshold": 0.9, "value": 0.88, "passed": False},
    ]}  # fmt: skip
    edit_json(meta, verdict=verdict)
    edit_json(
        trained / "reports/validation.json",
        drift={"previous": {"dataset_drift": True, "drifted": ["bill_length_mm", "island"],
                            "share_threshold": 0.5, "columns": [{}, {}, {}, {}]},
               "reference": None},
    )  # fmt: skip
    return trained


def test_report_compares_the_branch_with_production_and_main(branch: Path, cli):
    result = cli(["report"], cwd=branch)
    assert result.exit_code == 0, result.output
    md = result.output
    main = git(branch, "rev-parse", "main")[:8]
    assert md.startswith(f"## mlops report: {NAME} on `feature`")
    assert "Gates: **FAILED**: 1 quality gate failed (f1_macro min)" in md
    header = (
        f"| metric | production | main ({main}) | this branch | change vs production "
        "| change vs main |"
    )
    assert header in md
    main_accuracy = json.loads(git(branch, "show", "main:reports/metrics.json"))["accuracy"]
    delta = 0.9 - main_accuracy
    assert f"| accuracy | - | {main_accuracy:.4g} | **0.9** | - | {delta:+.4g} |" in md
    assert "production: no version of penguins-classifier in production yet" in md
    assert "| train.C | 1 | **0.05** |" in md
    assert "- validation: **passed**: 344 rows x 8 columns" in md
    assert "**dataset drift**, 2 of 4 columns drifted: bill_length_mm, island" in md
    assert "| f1_macro | min | 0.88 | - | 0.9 | **FAIL** |" in md
    assert "| actual \\ predicted | Adelie | Chinstrap | Gentoo |" in md
    assert "<details><summary>Full evaluation report</summary>" in md
    assert "### Evaluation of penguins-classifier" in md  # headings of the folded report demoted

    assert "Data validation FAILED" not in md
    edit_json(branch / "reports/validation.json", valid=False, failures=[
        {"column": "bill_length_mm", "check": "in_range(32.1, 59.6)", "failing": 4}
    ])  # fmt: skip
    md = cli(["report"], cwd=branch).output
    assert "**Data validation FAILED**: the pipeline stopped before training" in md
    assert "| bill_length_mm | in_range(32.1, 59.6) | 4 |" in md

    data = json.loads(cli(["report", "--json", "--vs", "main"], cwd=branch).output)
    assert data["blessed"] is False and [b["name"] for b in data["baselines"]] == ["main"]
    assert data["metrics"]["accuracy"] == 0.9 and data["params"]["train.C"] == 0.05
    assert data["baselines"][0]["metrics"]["accuracy"] == main_accuracy


def test_report_against_a_registered_stage(trained: Path, cli, monkeypatch: pytest.MonkeyPatch):
    assert cli(["register"], cwd=trained).exit_code == 0
    assert cli(["promote", NAME, "v0.0.1", "--to", "staging"], cwd=trained).exit_code == 0
    branch = make_branch(trained)
    monkeypatch.setenv("CI_JOB_URL", "https://gitlab.example.com/g/p/-/jobs/99")
    md = cli(["report", "--vs", "staging"], cwd=branch).output
    assert "| metric | staging (v0.0.1) | this branch | change vs staging |" in md
    assert "https://gitlab.example.com/g/p/-/jobs/99/artifacts/file/reports/evaluation.html" in md


def test_post_creates_then_updates_one_note_and_never_shows_the_token(
    branch: Path, gitlab: GitLabStub, cli
):
    first = cli(["report", "--post"], cwd=branch)
    assert first.exit_code == 0, first.output
    assert "created note 1000 on merge request !12" in first.output
    second = cli(["report", "--post", "--json"], cwd=branch)
    assert second.exit_code == 0, second.output
    posted = json.loads(second.output)["posted"]
    assert posted == {"action": "updated", "note_id": 1000, "project": "group/demo",
                      "merge_request": "12"}  # fmt: skip
    assert [(r.method, r.path.split("?")[0]) for r in gitlab.requests] == [
        ("GET", "/api/v4/projects/group%2Fdemo/merge_requests/12/notes"),
        ("POST", "/api/v4/projects/group%2Fdemo/merge_requests/12/notes"),
        ("GET", "/api/v4/projects/group%2Fdemo/merge_requests/12/notes"),
        ("PUT", "/api/v4/projects/group%2Fdemo/merge_requests/12/notes/1000"),
    ]
    assert all(r.headers["Private-Token"] == TOKEN for r in gitlab.requests)
    [note] = gitlab.notes[("group%2Fdemo", "12")]
    assert note["body"].startswith(MARKER) and "| train.C |" in note["body"]
    for output in (first.output, second.output):
        assert TOKEN not in output


def test_post_failures_name_the_problem_not_the_token(
    branch: Path, gitlab: GitLabStub, cli, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("MLOPS_GITLAB_TOKEN", "glpat-wrong-SECRET-1")
    result = cli(["report", "--post"], cwd=branch)
    assert result.exit_code == ExitCode.USAGE and "401" in result.output
    assert "SECRET" not in result.output and "MLOPS_GITLAB_TOKEN" in result.output
    result = cli(["report", "--post", "--json"], cwd=branch)
    assert "SECRET" not in result.output and json.loads(result.output)["exit_code"] == 2
    monkeypatch.delenv("CI_MERGE_REQUEST_IID")
    result = cli(["report", "--post"], cwd=branch)
    assert result.exit_code == ExitCode.USAGE
    assert "CI_MERGE_REQUEST_IID not set" in " ".join(result.output.split())
    assert gitlab.notes == {}

"""The GitLab adapter against a local stand-in for GitLab's API (real HTTP on 127.0.0.1)."""

from __future__ import annotations

import pytest

from mlops.adapters.gitlab import MARKER, GitLabError, MergeRequestRef, upsert_note
from mlops.errors import UsageError
from tests.gitlab_stub import GitLabStub


@pytest.fixture
def gitlab():
    stub = GitLabStub().start()
    yield stub
    stub.stop()


def test_creates_then_updates_one_note(gitlab):
    ref = MergeRequestRef.from_env(gitlab.env())
    first = upsert_note(ref, "## report v1")
    second = upsert_note(ref, "## report v2")
    assert first["action"] == "created" and second["action"] == "updated"
    assert second["note_id"] == first["note_id"]
    notes = gitlab.notes[("42", "7")]
    assert len(notes) == 1 and MARKER in notes[0]["body"] and "v2" in notes[0]["body"]
    assert [r.method for r in gitlab.requests] == ["GET", "POST", "GET", "PUT"]
    assert all(r.headers["Private-Token"] == gitlab.token for r in gitlab.requests)


def test_other_notes_are_left_alone(gitlab):
    gitlab.notes[("42", "7")] = [{"id": 1, "body": "LGTM"}]
    upsert_note(MergeRequestRef.from_env(gitlab.env()), "report")
    assert gitlab.notes[("42", "7")][0]["body"] == "LGTM"
    assert len(gitlab.notes[("42", "7")]) == 2


def test_bad_token_error_never_shows_the_token(gitlab):
    env = gitlab.env()
    env["MLOPS_GITLAB_TOKEN"] = "glpat-SECRET-value"
    with pytest.raises(GitLabError) as info:
        upsert_note(MergeRequestRef.from_env(env), "report")
    text = info.value.message + (info.value.hint or "")
    assert "401" in text and "SECRET" not in text
    assert "MLOPS_GITLAB_TOKEN" in info.value.hint


def test_missing_ci_variables_are_named():
    with pytest.raises(UsageError) as info:
        MergeRequestRef.from_env({"CI_PROJECT_ID": "1"})
    assert "CI_MERGE_REQUEST_IID" in info.value.message
    assert "MLOPS_GITLAB_TOKEN" in info.value.message


def test_unreachable_gitlab_is_a_clear_error():
    env = {
        "CI_API_V4_URL": "http://127.0.0.1:9/api/v4",
        "CI_PROJECT_ID": "1",
        "CI_MERGE_REQUEST_IID": "2",
        "MLOPS_GITLAB_TOKEN": "t0ken-xyz",
    }
    with pytest.raises(GitLabError) as info:
        upsert_note(MergeRequestRef.from_env(env), "r")
    assert "cannot reach GitLab" in info.value.message and "t0ken-xyz" not in info.value.message

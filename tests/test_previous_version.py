"""One `previous_version` (mlops.registry.desired) for rollback and for the monitor: from the
stage tags, the pin file's history, or the deployment events of the target; a version the
environment was rolled back away from is never the answer."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlops.errors import GitStateError
from mlops.registry.desired import previous_from_deployments, previous_version

DEPLOYED = [
    {"event": "deploy", "version": "v1", "previous": None},
    {"event": "deploy", "version": "v2", "previous": "v1"},
    {"event": "deploy", "version": "v3", "previous": "v2"},
]


def test_deployment_events_give_the_version_before_the_live_one():
    assert previous_from_deployments(DEPLOYED, "v3") == "v2"
    assert previous_from_deployments(DEPLOYED, "v2") == "v1"
    assert previous_from_deployments(DEPLOYED, "v1") is None
    assert previous_from_deployments(DEPLOYED, "v9") is None
    assert previous_from_deployments([{"event": "note"}, "x"][:1], "v1") is None


def test_a_version_rolled_back_away_from_is_never_previous():
    events = [*DEPLOYED, {"event": "rollback", "version": "v2", "previous": "v3"}]
    # v2 runs again after the rollback; it ran after v1, and v3 (rolled back from) is skipped
    assert previous_from_deployments(events, "v2") == "v1"
    events.append({"event": "deploy", "version": "v4", "previous": "v2"})
    assert previous_from_deployments(events, "v4") == "v2"
    again = [*events, {"event": "rollback", "version": "v2", "previous": "v4"}]
    assert previous_from_deployments(again, "v2") == "v1"


def test_previous_version_of_a_project_without_stage_tags(project: Path):
    with pytest.raises(GitStateError, match="no artifact"):
        previous_version(project, "staging")
    with pytest.raises(GitStateError, match="nothing to roll back to"):
        previous_version(project, "staging", live="v1", deployments=DEPLOYED)
    got = previous_version(project, "staging", live="v3", deployments=DEPLOYED)
    assert (got.current, got.version, got.source) == ("v3", "v2", "deployment history")
    rolled = [*DEPLOYED, {"event": "rollback", "version": "v2", "previous": "v3"}]
    got = previous_version(project, "staging", live="v2", deployments=rolled)
    assert got.version == "v1"

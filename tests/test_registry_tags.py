"""The tag grammar (one table, one regex) and the registry state built from tags (no git)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mlops.adapters.git import TagRef
from mlops.config.models import DeployPin
from mlops.registry.state import build_registry
from mlops.registry.tags import (
    TEMPLATES,
    Action,
    SemVer,
    TagName,
    format_message,
    format_metrics,
    format_tag,
    parse_message,
    parse_metrics,
    parse_tag,
)

ROUND_TRIP = [
    TagName(Action.REGISTER, "m", version="v0.0.1"),
    TagName(Action.REGISTER, "m", version="v1.2.3-rc.1+build.5", counter=4),
    TagName(Action.DEREGISTER, "penguins-classifier", version="v10.0.0"),
    TagName(Action.DEREGISTER, "m", version="v1.0.0", counter=7),
    TagName(Action.ASSIGN, "m", stage="prod", counter=1),
    TagName(Action.ASSIGN, "m_2", stage="staging-eu", counter=12),
    TagName(Action.ASSIGN, "m", stage="prod"),  # GTO's "simple" form
    TagName(Action.UNASSIGN, "m", stage="prod", counter=3),
    TagName(Action.DEPRECATE, "m"),
    TagName(Action.DEPRECATE, "m", counter=9),
    TagName(Action.CREATE, "m"),
    TagName(Action.RESERVE, "m", counter=5),
    TagName(Action.ASSIGN, "models/dir:m", stage="prod", counter=2),  # GTO's `dir:name`
]


@pytest.mark.parametrize("tag", ROUND_TRIP, ids=lambda t: f"{t.action}-{t.name}-{t.counter}")
def test_every_form_round_trips(tag: TagName):
    name = format_tag(
        tag.action, tag.name, version=tag.version, stage=tag.stage, counter=tag.counter
    )
    assert parse_tag(name) == tag


def test_every_template_is_covered_by_the_round_trip():
    assert {t.action for t in ROUND_TRIP} == set(TEMPLATES)


@pytest.mark.parametrize(
    "name, expected",
    [
        # exactly what gto 1.10 writes (see tests/test_registry.py for the live check)
        ("m@v0.0.1", TagName(Action.REGISTER, "m", version="v0.0.1")),
        ("m@v0.0.1!", TagName(Action.DEREGISTER, "m", version="v0.0.1")),
        ("m#prod#1", TagName(Action.ASSIGN, "m", stage="prod", counter=1)),
        ("m#prod!#4", TagName(Action.UNASSIGN, "m", stage="prod", counter=4)),
        ("m@deprecated", TagName(Action.DEPRECATE, "m")),
        ("dir=m@v1.0.0", TagName(Action.REGISTER, "dir:m", version="v1.0.0")),
    ],
)
def test_parses_gto_forms(name: str, expected: TagName):
    assert parse_tag(name) == expected


@pytest.mark.parametrize(
    "name",
    [
        "v1.0.0",  # a release tag
        "m@1.0.0",  # no v
        "m@v01.0.0",  # leading zero
        "m@v1.0",  # not semver
        "m#",
        "m@latest",
        "-m@v1.0.0",
        "m@v1.0.0#",
        "m#prod#x",
    ],
)
def test_rejects_what_is_not_a_registry_tag(name: str):
    assert parse_tag(name) is None


def test_format_refuses_bad_parts():
    with pytest.raises(ValueError):
        format_tag(Action.REGISTER, "m", version="1.0")
    with pytest.raises(ValueError):
        format_tag(Action.ASSIGN, "m", stage="no stage")


def test_semver_order_bump_and_first_versions():
    order = ["v0.0.1", "v0.1.0", "v1.0.0-alpha", "v1.0.0-alpha.1", "v1.0.0-beta", "v1.0.0"]
    parsed = [SemVer.parse(v) for v in order]
    assert sorted(reversed(parsed)) == parsed
    assert str(SemVer.parse("v1.2.3").bump("patch")) == "v1.2.4"
    assert str(SemVer.parse("v1.2.3").bump("minor")) == "v1.3.0"
    assert str(SemVer.parse("v1.2.3").bump("major")) == "v2.0.0"
    assert str(SemVer.parse("v1.0.0-rc.1").bump("patch")) == "v1.0.0"
    with pytest.raises(ValueError):
        SemVer.parse("1.2.3")


def test_message_fields_and_metrics_round_trip():
    metrics = {"accuracy": 0.988372, "rows": 86, "flag": True, "name": "x"}
    text = format_message(
        "Registering artifact m version v0.0.1",
        {"blessed": "true", "metrics": format_metrics(metrics), "empty": ""},
    )
    head, fields = parse_message(text)
    assert head == "Registering artifact m version v0.0.1"
    assert fields == {"blessed": "true", "metrics": "accuracy=0.988372 rows=86"}
    assert parse_metrics(fields["metrics"]) == {"accuracy": 0.988372, "rows": 86}
    assert parse_message("Registering artifact m version v0.0.1") == (
        "Registering artifact m version v0.0.1",
        {},
    )


def test_deploy_pin_uses_the_registry_version_grammar():
    assert DeployPin(model="m", version="v1.2.0").version == "v1.2.0"
    for bad in ("1.2.0", "latest", "v1.2"):
        with pytest.raises(ValueError):
            DeployPin(model="m", version=bad)
    with pytest.raises(ValueError):
        DeployPin(model="m", version="v1.0.0", extra="x")


# ---- state: GTO's semantics from a list of tags -------------------------------------------

C1, C2, C3 = "1" * 40, "2" * 40, "3" * 40


def tag(name: str, commit: str, ts: int, message: str = "", annotated: bool = True) -> TagRef:
    return TagRef(name, annotated, commit, "T", "t@x", ts, message or name)


def registry(*refs: TagRef):
    return build_registry(Path("."), list(refs))


def test_versions_latest_and_stages():
    reg = registry(
        tag("m@v0.0.1", C1, 100),
        tag("m@v0.0.2", C2, 110, "Registering\n\nblessed: false\nmetrics: accuracy=0.5"),
        tag("m#staging#1", C1, 120),
        tag("m#prod#2", C1, 130),
        tag("m#staging#3", C2, 140),
    )
    art = reg.artifact("m")
    assert art.latest().version == "v0.0.2"
    assert art.latest(blessed_only=True).version == "v0.0.1"  # v0.0.2 says blessed: false
    assert art.version("v0.0.2").metrics == {"accuracy": 0.5}
    assert art.in_stage("staging").version == "v0.0.2"
    assert art.in_stage("prod").version == "v0.0.1"
    assert art.in_stage("prod").tag == "m#prod#2"
    assert reg.next_counter("m") == 4
    assert reg.to_dict()["m"]["stage"] == {"prod": "v0.0.1", "staging": "v0.0.2"}


def test_same_second_events_are_ordered_by_counter():
    reg = registry(
        tag("m@v0.0.1", C1, 100),
        tag("m@v0.0.2", C2, 100),
        tag("m#prod#10", C2, 200),  # `#10` sorts before `#9` as text; the counter decides
        tag("m#prod#9", C1, 200),
    )
    assert reg.artifact("m").in_stage("prod").version == "v0.0.2"


def test_unassign_deregister_and_deprecate():
    reg = registry(
        tag("m@v0.0.1", C1, 100),
        tag("m@v0.0.2", C2, 101),
        tag("m#prod#1", C1, 102),
        tag("m#prod#2", C2, 103),
        tag("m#prod!#3", C2, 104),  # unassign v0.0.2: prod falls back to v0.0.1 (as GTO)
    )
    art = reg.artifact("m")
    assert art.in_stage("prod").version == "v0.0.1"
    reg = registry(
        tag("m@v0.0.1", C1, 100),
        tag("m@v0.0.2", C2, 101),
        tag("m#prod#1", C2, 102),
        tag("m@v0.0.2!", C2, 103),
    )
    art = reg.artifact("m")
    assert art.latest().version == "v0.0.1"
    assert art.in_stage("prod") is None  # a deregistered version holds no stage
    assert not art.version("v0.0.2").active
    reg = registry(tag("m@v0.0.1", C1, 100), tag("m@deprecated", C1, 101))
    assert not reg.artifact("m").active
    assert reg.to_dict(include_inactive=False) == {}


def test_lightweight_and_reserved_tags_only_count_for_the_counter():
    reg = registry(
        tag("m@v0.0.1", C1, 100),
        tag("m#prod#7", C1, 101, annotated=False),  # lightweight: not an event
        tag("m#reserved#8", C1, 102, annotated=False),
        tag("release-1.0", C1, 103),  # not a registry tag at all
    )
    art = reg.artifact("m")
    assert art.in_stage("prod") is None
    assert [e.tag for e in reg.history()] == ["m@v0.0.1"]
    assert reg.next_counter("m") == 9


def test_stage_tag_on_unregistered_commit_makes_a_commit_version():
    reg = registry(tag("m#prod#1", C3, 100))
    art = reg.artifact("m")
    assert art.in_stage("prod").version == C3
    assert art.latest() is None
    assert reg.to_dict()["m"]["version"] is None


def test_previous_in_stage_skips_versions_a_rollback_left():
    events = [
        tag("m@v0.0.1", C1, 100),
        tag("m@v0.0.2", C2, 101),
        tag("m@v0.0.3", C3, 102),
        tag("m#prod#1", C1, 110),
        tag("m#prod#2", C2, 111),
        tag("m#prod#3", C3, 112),
    ]
    art = registry(*events).artifact("m")
    assert art.in_stage("prod").version == "v0.0.3"
    assert art.previous_in_stage("prod").version == "v0.0.2"
    events.append(tag("m#prod#4", C2, 120, "Assigning\n\nrollback-from: v0.0.3"))
    art = registry(*events).artifact("m")
    assert art.in_stage("prod").version == "v0.0.2"
    assert art.previous_in_stage("prod").version == "v0.0.1"  # not back to v0.0.3
    events.append(tag("m#prod#5", C1, 130, "Assigning\n\nrollback-from: v0.0.2"))
    assert registry(*events).artifact("m").previous_in_stage("prod") is None
    events.append(tag("m#prod#6", C3, 140))  # v0.0.3 promoted again: it counts again
    art = registry(*events).artifact("m")
    assert art.in_stage("prod").version == "v0.0.3"
    assert art.previous_in_stage("prod").version == "v0.0.1"


def test_history_is_newest_first_with_gto_event_names():
    reg = registry(tag("m@v0.0.1", C1, 100), tag("m#prod#1", C1, 100))
    events = [e.to_dict() for e in reg.history("m")]
    assert [e["event"] for e in events] == ["assignment", "registration"]
    assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00$", events[0]["timestamp"])
    assert events[0]["version"] == "v0.0.1"


def test_git_messages_lose_credentials():
    from mlops.adapters.git import redact

    text = "fatal: unable to access 'https://oauth2:glpat-secret@gitlab.example/a/b.git/'"
    assert redact(text) == "fatal: unable to access 'https://***@gitlab.example/a/b.git/'"
    assert redact("To /tmp/origin.git") == "To /tmp/origin.git"

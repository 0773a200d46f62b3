"""The registry's state, read from git tags in one `git for-each-ref` call.

Semantics follow GTO 1.10 so both tools agree on the same tags:

- events are annotated tags, ordered by tagger time (one-second resolution); mlops breaks ties
  with the tag's `#N` counter, then GTO's event priority;
- a version is *active* while its latest registration event is not a deregistration;
- a stage tag names a commit; the event belongs to the version registered at that commit (a
  commit without one makes an unregistered version named by the commit id);
- a version *holds* a stage while its latest event for that stage is an assignment; the stage's
  current version is the holder assigned most recently;
- an artifact is active unless its latest event is a deprecation;
- the latest version is the highest SemVer among active registered versions.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from mlops.adapters import git
from mlops.errors import GitStateError
from mlops.registry.tags import (
    Action,
    SemVer,
    TagName,
    parse_message,
    parse_metrics,
    parse_tag,
)

# GTO's event priorities (history order within one second) and names
PRIORITY = {
    Action.CREATE: 1,
    Action.DEPRECATE: 2,
    Action.REGISTER: 3,
    Action.DEREGISTER: 4,
    Action.ASSIGN: 5,
    Action.UNASSIGN: 6,
}
EVENT_NAME = {
    Action.CREATE: "creation",
    Action.DEPRECATE: "deprecation",
    Action.REGISTER: "registration",
    Action.DEREGISTER: "deregistration",
    Action.ASSIGN: "assignment",
    Action.UNASSIGN: "unassignment",
}


def iso(ts: int | float | None) -> str | None:
    """ISO 8601 in UTC, as GTO prints timestamps."""
    if ts is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(ts))


@dataclass(slots=True)
class Event:
    """One registry event: an annotated tag in GTO's grammar (treat it as read-only)."""

    action: Action
    artifact: str
    tag: str
    commit: str
    timestamp: int
    author: str
    author_email: str
    message: str
    version: str | None = None  # for stage events: the version registered at `commit`
    stage: str | None = None
    counter: int | None = None
    # order of events: tagger time, then counter (when present), then GTO's priority
    key: tuple[int, int, int, int] = field(init=False, repr=False, compare=False)
    _fields: dict[str, str] | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        has_counter = self.counter is not None
        self.key = (self.timestamp, int(has_counter), self.counter or 0, PRIORITY[self.action])

    @property
    def fields(self) -> dict[str, str]:
        """The `key: value` fields of the message."""
        if self._fields is None:
            self._fields = parse_message(self.message)[1]
        return self._fields

    @property
    def headline(self) -> str:
        return parse_message(self.message)[0]

    def to_dict(self) -> dict[str, Any]:
        return {
            "timestamp": iso(self.timestamp),
            "artifact": self.artifact,
            "event": EVENT_NAME[self.action],
            "version": self.version,
            "stage": self.stage,
            "commit": self.commit,
            "author": self.author,
            "author_email": self.author_email,
            "message": self.message.strip(),
            "tag": self.tag,
            "counter": self.counter,
        }


@dataclass
class Version:
    """A version of an artifact: its registration events and its stage events."""

    artifact: str
    version: str  # vX.Y.Z, or the commit id of an unregistered commit that has stage tags
    commit: str
    registrations: list[Event] = field(default_factory=list)  # register/deregister, in order
    stage_events: dict[str, list[Event]] = field(default_factory=dict)  # assign/unassign

    @property
    def registered(self) -> bool:
        return any(e.action == Action.REGISTER for e in self.registrations)

    @property
    def active(self) -> bool:
        if self.registrations:
            return self.registrations[-1].action == Action.REGISTER
        return bool(self.stage_events)

    @property
    def registration(self) -> Event | None:
        """The latest registration event."""
        regs = [e for e in self.registrations if e.action == Action.REGISTER]
        return regs[-1] if regs else None

    @property
    def registered_at(self) -> int | None:
        reg = self.registration
        return reg.timestamp if reg else None

    @cached_property
    def semver(self) -> SemVer | None:
        """The version as SemVer (None for an unregistered commit); parsed once."""
        return SemVer.parse(self.version) if SemVer.valid(self.version) else None

    @property
    def fields(self) -> dict[str, str]:
        reg = self.registration
        return reg.fields if reg else {}

    @property
    def blessed(self) -> bool | None:
        """From the registration message: True, False, or None when it does not say (gto)."""
        value = self.fields.get("blessed", "").lower()
        return {"true": True, "yes": True, "false": False, "no": False}.get(value)

    @property
    def metrics(self) -> dict[str, float]:
        return parse_metrics(self.fields.get("metrics", ""))

    def holds(self) -> dict[str, Event]:
        """Stages this version holds: stage -> its latest assignment."""
        out = {}
        for stage, events in self.stage_events.items():
            if events and events[-1].action == Action.ASSIGN:
                out[stage] = events[-1]
        return out

    def to_dict(self) -> dict[str, Any]:
        reg = self.registration
        return {
            "artifact": self.artifact,
            "version": self.version,
            "commit": self.commit,
            "registered": self.registered,
            "active": self.active,
            "registered_at": iso(reg.timestamp) if reg else None,
            "author": reg.author if reg else None,
            "author_email": reg.author_email if reg else None,
            "tag": reg.tag if reg else None,
            "blessed": self.blessed,
            "metrics": self.metrics,
            "stages": sorted(self.holds()) if self.active else [],
            "message": reg.message.strip() if reg else None,
        }


@dataclass(frozen=True)
class StageHolder:
    """A version in a stage: which version, which commit, the tag that put it there."""

    artifact: str
    stage: str
    version: str
    commit: str
    tag: str
    assigned_at: int
    counter: int | None
    author: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "artifact": self.artifact,
            "stage": self.stage,
            "version": self.version,
            "commit": self.commit,
            "tag": self.tag,
            "assigned_at": iso(self.assigned_at),
            "counter": self.counter,
            "author": self.author,
        }


@dataclass
class Artifact:
    """One artifact (model) of the registry."""

    name: str
    versions: dict[str, Version] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)  # every event, in order
    by_commit: dict[str, list[Version]] = field(default_factory=dict, repr=False)

    def add_version(self, v: Version) -> Version:
        self.versions[v.version] = v
        self.by_commit.setdefault(v.commit, []).append(v)
        return v

    @property
    def active(self) -> bool:
        """False once deprecated (until a later event revives it, as in GTO)."""
        return bool(self.events) and self.events[-1].action != Action.DEPRECATE

    def version(self, version: str) -> Version | None:
        return self.versions.get(version)

    def version_at(self, commit: str) -> Version | None:
        """The registered version at `commit` (the active one if there are several)."""
        found = [v for v in self.by_commit.get(commit, ()) if v.registered]
        active = [v for v in found if v.active]
        candidates = active or found
        return candidates[-1] if candidates else None

    def registered_versions(self, active_only: bool = True) -> list[Version]:
        """Registered versions, highest SemVer first."""
        out = [
            v
            for v in self.versions.values()
            if v.registered and v.semver is not None and (v.active or not active_only)
        ]
        return sorted(out, key=lambda v: v.semver, reverse=True)  # type: ignore[arg-type,return-value]

    def latest(self, blessed_only: bool = False) -> Version | None:
        """The highest active registered version (with `blessed_only`: not marked unblessed)."""
        for v in self.registered_versions():
            if not blessed_only or v.blessed is not False:
                return v
        return None

    def holders(self, stage: str) -> list[StageHolder]:
        """Active versions holding `stage`, most recently assigned first."""
        found = []
        for v in self.versions.values():
            if not v.active:
                continue
            event = v.holds().get(stage)
            if event is not None:
                found.append((event.key, v, event))
        found.sort(key=lambda item: item[0], reverse=True)
        return [
            StageHolder(
                self.name,
                stage,
                v.version,
                v.commit,
                e.tag,
                e.timestamp,
                e.counter,
                e.author,
            )
            for _, v, e in found
        ]

    def in_stage(self, stage: str) -> StageHolder | None:
        """The version currently in `stage` (None when no version holds it)."""
        holders = self.holders(stage)
        return holders[0] if holders else None

    def stages(self) -> list[str]:
        """Stages some active version holds."""
        names = {s for v in self.versions.values() if v.active for s in v.holds()}
        return sorted(names)

    def stage_history(self, stage: str) -> list[Event]:
        """Assignments and unassignments of `stage`, oldest first."""
        return [e for e in self.events if e.stage == stage]

    def previous_in_stage(self, stage: str) -> StageHolder | None:
        """The version to roll `stage` back to.

        The holder assigned most recently before the current one, skipping versions a rollback
        moved the stage away from (a rollback's tag says `rollback-from: vX`) unless they were
        assigned again after that rollback. So rolling back twice goes two steps back rather than
        flipping between the last two versions.
        """
        holders = self.holders(stage)
        if len(holders) < 2:
            return None
        last_assigned: dict[str, tuple] = {}
        rolled_back: dict[str, tuple] = {}
        for e in self.stage_history(stage):
            if e.action != Action.ASSIGN or e.version is None:
                continue
            last_assigned[e.version] = e.key
            away = e.fields.get("rollback-from")
            if away:
                rolled_back[away] = e.key
        for h in holders[1:]:
            if h.version == holders[0].version:
                continue
            away_at = rolled_back.get(h.version)
            if away_at is not None and away_at > last_assigned.get(h.version, (0,)):
                continue
            return h
        return None

    def to_dict(self, all_stages: list[str] | None = None) -> dict[str, Any]:
        """GTO's `gto show --json` entry for this artifact, plus mlops' details."""
        latest = self.latest()
        blessed = self.latest(blessed_only=True)
        stage_names = all_stages if all_stages is not None else self.stages()
        holders = {s: self.in_stage(s) for s in stage_names}
        return {
            # the keys `gto show --json` prints, with the same meaning
            "version": latest.version if latest else None,
            "stage": {s: (h.version if h else None) for s, h in holders.items()},
            "registered": bool(self.events),
            "active": self.active,
            # mlops' additions
            "latest_blessed": blessed.version if blessed else None,
            "assignments": {s: h.to_dict() for s, h in holders.items() if h is not None},
        }

    def sorted_versions(self) -> list[Version]:
        """Every version: SemVer ones highest first, then unregistered commits."""
        semver = [v for v in self.versions.values() if v.semver is not None]
        other = [v for v in self.versions.values() if v.semver is None]
        semver.sort(key=lambda v: v.semver, reverse=True)  # type: ignore[arg-type,return-value]
        other.sort(key=lambda v: v.version, reverse=True)
        return semver + other


@dataclass
class Registry:
    """Every artifact of a repository, from its tags."""

    root: Path
    artifacts: dict[str, Artifact]
    counters: dict[str, int]  # highest `#N` on any tag (lightweight too) per artifact
    tag_names: frozenset[str]

    def get(self, name: str) -> Artifact | None:
        return self.artifacts.get(name)

    def artifact(self, name: str) -> Artifact:
        """The artifact `name`; `GitStateError` (exit 5) naming the known ones if absent."""
        found = self.artifacts.get(name)
        if found is None:
            known = ", ".join(sorted(self.artifacts)) or "none yet"
            raise GitStateError(
                f"no artifact {name!r} in the registry (registered: {known})",
                "Check the name, or register a version first: `mlops register`.",
            )
        return found

    def next_counter(self, name: str) -> int:
        """The counter for the next stage tag of `name`: highest on any of its tags + 1."""
        return self.counters.get(name, 0) + 1

    def stages(self, include_inactive: bool = True) -> list[str]:
        """Stages held in any artifact (GTO lists these for every artifact)."""
        return sorted(
            {s for a in self.artifacts.values() if include_inactive or a.active for s in a.stages()}
        )

    def to_dict(self, include_inactive: bool = True) -> dict[str, Any]:
        """`{name: {...}}` with the keys of `gto show --json` (and mlops' details)."""
        stages = self.stages(include_inactive)
        return {
            name: a.to_dict(stages)
            for name, a in sorted(self.artifacts.items())
            if include_inactive or a.active
        }

    def history(self, name: str | None = None) -> list[Event]:
        """Events, newest first (of one artifact, or all)."""
        arts = [self.artifact(name)] if name else list(self.artifacts.values())
        events = [e for a in arts for e in a.events]
        return sorted(events, key=lambda e: e.key, reverse=True)


def build_registry(root: Path, refs: list[git.TagRef]) -> Registry:
    """The registry state from a list of tags (see the module docstring for the rules)."""
    counters: dict[str, int] = {}
    version_tags: list[tuple[git.TagRef, TagName]] = []
    other_tags: list[tuple[git.TagRef, TagName]] = []
    for ref in refs:
        parsed = parse_tag(ref.name)
        if parsed is None:
            continue
        if parsed.counter is not None:
            counters[parsed.name] = max(counters.get(parsed.name, 0), parsed.counter)
        if not ref.annotated or parsed.action == Action.RESERVE:
            continue  # GTO ignores lightweight tags as events (they still count for counters)
        if parsed.action in (Action.REGISTER, Action.DEREGISTER):
            version_tags.append((ref, parsed))
        else:
            other_tags.append((ref, parsed))
    artifacts: dict[str, Artifact] = {}

    def art(name: str) -> Artifact:
        found = artifacts.get(name)
        if found is None:
            found = artifacts[name] = Artifact(name)
        return found

    def event(ref: git.TagRef, p: TagName, version: str | None) -> Event:
        return Event(p.action, p.name, ref.name, ref.commit, ref.timestamp, ref.tagger,
                     ref.email, ref.message, version, p.stage, p.counter)  # fmt: skip

    events: list[Event] = []
    # versions first, so a stage tag finds the version registered at its commit whatever the order
    for e in sorted((event(ref, p, p.version) for ref, p in version_tags), key=lambda e: e.key):
        a = art(e.artifact)
        v = a.versions.get(e.version or "") or a.add_version(
            Version(e.artifact, e.version or "", e.commit)
        )
        v.registrations.append(e)
        events.append(e)
    for ref, p in other_tags:
        a = art(p.name)
        version: str | None = None
        if p.stage is not None:
            held = a.version_at(ref.commit) or a.versions.get(ref.commit)
            v = held if held is not None else a.add_version(Version(p.name, ref.commit, ref.commit))
            version = v.version
        e = event(ref, p, version)
        if p.stage is not None:
            v.stage_events.setdefault(p.stage, []).append(e)
        events.append(e)
    events.sort(key=lambda e: e.key)
    for e in events:
        artifacts[e.artifact].events.append(e)
    for a in artifacts.values():
        for v in a.versions.values():
            for evs in v.stage_events.values():
                evs.sort(key=lambda e: e.key)
    return Registry(Path(root), artifacts, counters, frozenset(r.name for r in refs))


def read_registry(root: Path | str) -> Registry:
    """Read the registry of the repository at `root` (one `git for-each-ref`, no per-tag work)."""
    try:
        refs = git.list_tags(root)
    except GitStateError:
        raise GitStateError(
            f"{root} is not inside a git repository",
            "Run mlops inside the project's git repository (or `mlops init`).",
        ) from None
    return build_registry(Path(root), refs)

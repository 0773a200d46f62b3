"""The registry's tag grammar: ONE template table to write tags, ONE regex to read them.

The grammar is GTO's (1.10), so `gto` and `dvc artifacts` read what mlops writes and mlops reads
what they write:

    NAME@vX.Y.Z        register a version          NAME@vX.Y.Z!      deregister it
    NAME#STAGE#N       assign a stage              NAME#STAGE!#N     unassign it
    NAME@deprecated    deprecate the artifact

`#N` is a counter per artifact (highest on any tag of the artifact + 1); GTO accepts it on every
form and writes it on stage tags. A name `dir:name` is spelled `dir=name` in a tag. mlops adds one
form of its own, a *lightweight* `NAME#reserved#N` tag that claims counter N on the remote so
that two promotions at once cannot take the same counter (GTO skips lightweight tags as events but
counts them for the counter, so it respects the claim too).

Tag messages carry a first line like GTO's ("Registering artifact m version v0.0.1") and, after a
blank line, `key: value` fields (`blessed`, `metrics`, ...) that mlops reads back.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from mlops.config.versions import SEMVER, VERSION_RE, SemVer  # the one version grammar


class Action(StrEnum):
    REGISTER = "register"
    DEREGISTER = "deregister"
    ASSIGN = "assign"
    UNASSIGN = "unassign"
    DEPRECATE = "deprecate"
    CREATE = "create"  # GTO's `NAME@created`: read, never written
    RESERVE = "reserve"  # mlops' lightweight counter claim


# ---- the one template table (writing) -------------------------------------------------------

TEMPLATES: dict[Action, str] = {
    Action.REGISTER: "{name}@{version}",
    Action.DEREGISTER: "{name}@{version}!",
    Action.ASSIGN: "{name}#{stage}",
    Action.UNASSIGN: "{name}#{stage}!",
    Action.DEPRECATE: "{name}@deprecated",
    Action.CREATE: "{name}@created",
    Action.RESERVE: "{name}#reserved",
}
COUNTER_SUFFIX = "#{counter}"
RESERVED_STAGE = "reserved"
# what mlops writes with a counter (GTO's defaults: stage tags carry one, the others do not)
COUNTED = frozenset({Action.ASSIGN, Action.UNASSIGN, Action.RESERVE})

# ---- the one regex (reading) ----------------------------------------------------------------

_NAME = r"[A-Za-z0-9](?:[A-Za-z0-9_/-]*[A-Za-z0-9])?"
TAG_RE = re.compile(
    rf"^(?P<name>(?:[A-Za-z0-9_./-]+=)?{_NAME})"
    rf"(?:@(?P<version>{SEMVER})(?P<deregister>!)?"
    r"|@(?P<special>deprecated|created)"
    rf"|\#(?P<stage>{_NAME})(?P<unassign>!)?)"
    r"(?:\#(?P<counter>[0-9]+))?$"
)
NAME_RE = re.compile(rf"^{_NAME}$")


@dataclass(frozen=True)
class TagName:
    """A parsed registry tag name."""

    action: Action
    name: str  # the artifact name (`dir:name` form)
    version: str | None = None
    stage: str | None = None
    counter: int | None = None


def format_tag(
    action: Action,
    name: str,
    *,
    version: str | None = None,
    stage: str | None = None,
    counter: int | None = None,
) -> str:
    """The tag name for an event (`counter` None: GTO's "simple" form without `#N`)."""
    if action in (Action.REGISTER, Action.DEREGISTER) and not (
        version and VERSION_RE.match(version)
    ):
        raise ValueError(f"not a version (vMAJOR.MINOR.PATCH): {version!r}")
    if action in (Action.ASSIGN, Action.UNASSIGN) and not (stage and NAME_RE.match(stage)):
        raise ValueError(f"not a stage name: {stage!r}")
    tag = TEMPLATES[action].format(name=name.replace(":", "="), version=version, stage=stage)
    if counter is not None:
        tag += COUNTER_SUFFIX.format(counter=counter)
    return tag


def parse_tag(tag: str) -> TagName | None:
    """Parse a tag name; None when it is not a registry tag."""
    m = TAG_RE.match(tag)
    if m is None:
        return None
    name = m["name"].replace("=", ":")
    counter = int(m["counter"]) if m["counter"] is not None else None
    if m["version"]:
        action = Action.DEREGISTER if m["deregister"] else Action.REGISTER
        return TagName(action, name, version=m["version"], counter=counter)
    if m["special"]:
        action = Action.DEPRECATE if m["special"] == "deprecated" else Action.CREATE
        return TagName(action, name, counter=counter)
    if m["stage"] == RESERVED_STAGE and not m["unassign"]:
        return TagName(Action.RESERVE, name, counter=counter)
    action = Action.UNASSIGN if m["unassign"] else Action.ASSIGN
    return TagName(action, name, stage=m["stage"], counter=counter)


# ---- versions --------------------------------------------------------------------------------

FIRST_VERSION = {"patch": SemVer(0, 0, 1), "minor": SemVer(0, 1, 0), "major": SemVer(1, 0, 0)}


# ---- messages --------------------------------------------------------------------------------

_FIELD_RE = re.compile(r"^([a-z][a-z0-9_-]*): ?(.*)$")


def format_message(headline: str, fields: dict[str, str] | None = None) -> str:
    """A tag message: GTO-style first line, then `key: value` lines."""
    lines = [headline.strip()]
    if fields:
        lines.append("")
        lines += [f"{k}: {v}" for k, v in fields.items() if v is not None and v != ""]
    return "\n".join(lines) + "\n"


def parse_message(message: str) -> tuple[str, dict[str, str]]:
    """(first line, fields) of a tag message; unknown text is ignored."""
    lines = message.strip().splitlines()
    if not lines:
        return "", {}
    fields: dict[str, str] = {}
    for line in lines[1:]:
        m = _FIELD_RE.match(line.strip())
        if m:
            fields[m.group(1)] = m.group(2).strip()
    return lines[0].strip(), fields


def format_metrics(metrics: dict[str, object]) -> str:
    """`accuracy=0.9884 f1_macro=0.9902` from numeric metrics."""
    parts = []
    for k, v in metrics.items():
        if isinstance(v, bool) or not isinstance(v, int | float):
            continue
        parts.append(f"{k}={v:.6g}" if isinstance(v, float) else f"{k}={v}")
    return " ".join(parts)


def parse_metrics(text: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for part in text.split():
        key, sep, value = part.partition("=")
        if not sep:
            continue
        try:
            out[key] = float(value) if any(c in value for c in ".eE") else int(value)
        except ValueError:
            continue
    return out

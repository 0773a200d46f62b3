"""The one version grammar: `vMAJOR.MINOR.PATCH[-pre][+build]`, ordered as SemVer 2.0 says.

It sits in `mlops.config` because pipeline.yaml's pin files are checked against it; the registry's
tag grammar (`mlops.registry.tags`) builds its tag regex from `SEMVER`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import total_ordering

_NUM = r"(?:0|[1-9][0-9]*)"
_PRE_ID = r"(?:0|[1-9][0-9]*|[0-9]*[A-Za-z-][0-9A-Za-z-]*)"
SEMVER = (
    rf"v(?P<major>{_NUM})\.(?P<minor>{_NUM})\.(?P<patch>{_NUM})"
    rf"(?:-(?P<pre>{_PRE_ID}(?:\.{_PRE_ID})*))?"
    r"(?:\+(?P<build>[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?"
)
VERSION_RE = re.compile(rf"^{SEMVER}$")


@total_ordering
@dataclass(frozen=True)
class SemVer:
    """A `vMAJOR.MINOR.PATCH[-pre][+build]` version, ordered as SemVer 2.0 says."""

    major: int
    minor: int
    patch: int
    pre: tuple[str, ...] = ()
    build: str = ""

    @classmethod
    def parse(cls, text: str) -> SemVer:
        m = VERSION_RE.match(text)
        if m is None:
            raise ValueError(f"not a version (vMAJOR.MINOR.PATCH, e.g. v1.2.0): {text!r}")
        pre = tuple(m["pre"].split(".")) if m["pre"] else ()
        return cls(int(m["major"]), int(m["minor"]), int(m["patch"]), pre, m["build"] or "")

    @staticmethod
    def valid(text: str) -> bool:
        return VERSION_RE.match(text) is not None

    def _key(self) -> tuple[int, int, int, int, tuple[tuple[int, int, str], ...]]:
        # a pre-release sorts before its release; numeric identifiers before alphanumeric ones
        # (computed once: sorting a registry's versions compares each many times)
        key = self.__dict__.get("_sort_key")
        if key is None:
            pre = tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in self.pre)
            key = self.__dict__["_sort_key"] = (
                self.major,
                self.minor,
                self.patch,
                0 if self.pre else 1,
                pre,
            )
        return key

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, SemVer):
            return NotImplemented
        return self._key() < other._key()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SemVer) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def bump(self, part: str) -> SemVer:
        if part == "major":
            return SemVer(self.major + 1, 0, 0)
        if part == "minor":
            return SemVer(self.major, self.minor + 1, 0)
        if part == "patch":
            return SemVer(self.major, self.minor, self.patch + (0 if self.pre else 1))
        raise ValueError(f"bump must be major, minor or patch, not {part!r}")

    def __str__(self) -> str:
        text = f"v{self.major}.{self.minor}.{self.patch}"
        if self.pre:
            text += "-" + ".".join(self.pre)
        if self.build:
            text += "+" + self.build
        return text

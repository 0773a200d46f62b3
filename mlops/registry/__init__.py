"""Model registry: git tags in GTO's grammar (versions, stages, history).

Reading (light: no pydantic, no DVC; `mlops registry show` stays fast):

    from mlops.registry import read_registry
    reg = read_registry(".")
    art = reg.artifact("penguins-classifier")
    art.latest(blessed_only=True)          # the latest registered (blessed) version
    art.in_stage("production")             # StageHolder: version, commit, tag
    art.previous_in_stage("production")    # what a rollback would go back to

Environments and writes live in submodules (they load pipeline.yaml):
`mlops.registry.desired` (desired_version, current_version, previous_version),
`mlops.registry.write` (write_stage_tag: next counter, safe push), `mlops.registry.register`,
`mlops.registry.promote` (promote, rollback, deprecate, deregister), `mlops.registry.lineage`.
"""

from mlops.registry.state import (
    Artifact,
    Event,
    Registry,
    StageHolder,
    Version,
    build_registry,
    read_registry,
)
from mlops.registry.tags import Action, SemVer, TagName, format_tag, parse_tag

__all__ = [
    "Action",
    "Artifact",
    "Event",
    "Registry",
    "SemVer",
    "StageHolder",
    "TagName",
    "Version",
    "build_registry",
    "format_tag",
    "parse_tag",
    "read_registry",
]

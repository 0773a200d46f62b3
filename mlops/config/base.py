"""The base of every config model (unknown keys forbidden) and the name grammars they share."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

NAME_PATTERN = r"^[a-z0-9]([a-z0-9_-]*[a-z0-9])?$"  # a GTO artifact name, usable in tags and paths
TYPE_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+$"  # module.Class


class Strict(BaseModel):
    """A config model: an unknown key is an error naming its path."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

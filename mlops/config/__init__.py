"""Configuration: pydantic models of the files a user owns, and their loaders.

The names below load on first use (PEP 562), so light modules such as `mlops.config.yamlfile`
can be imported without building the pydantic models (~0.2 s): the no-op `mlops run` and
`mlops registry show` never need them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlops.config.check import Project, load_project, stage_graph, topological
    from mlops.config.models import Params, Pipeline, Stage
    from mlops.config.resolve import PARAMS_FILE, PIPELINE_FILE, ResolvedStage

_EXPORTS = {
    "Project": "mlops.config.check",
    "load_project": "mlops.config.check",
    "stage_graph": "mlops.config.check",
    "topological": "mlops.config.check",
    "Params": "mlops.config.models",
    "Pipeline": "mlops.config.models",
    "Stage": "mlops.config.models",
    "PARAMS_FILE": "mlops.config.resolve",
    "PIPELINE_FILE": "mlops.config.resolve",
    "ResolvedStage": "mlops.config.resolve",
}

__all__ = [
    "PARAMS_FILE",
    "PIPELINE_FILE",
    "Params",
    "Pipeline",
    "Project",
    "ResolvedStage",
    "Stage",
    "load_project",
    "stage_graph",
    "topological",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'mlops.config' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value

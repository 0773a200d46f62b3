"""Configuration: pydantic models of the files a user owns, and their loaders."""

from mlops.config.check import Project, load_project, stage_graph, topological
from mlops.config.models import Params, Pipeline, Stage
from mlops.config.resolve import PARAMS_FILE, PIPELINE_FILE, ResolvedStage

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

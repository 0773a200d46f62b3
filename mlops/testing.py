"""Helpers for a project's own tests (`tests/test_model.py`, scaffolded by `mlops init`).

They build what the train stage builds, from the same pipeline.yaml and params.yaml, without
DVC: sample rows of the project's data, the transformers of `train.features`, and the unfitted
pipeline (features, preprocessing, estimator). A test of your features then checks them on real
rows (shape, missing values) and a tiny training run proves the whole pipeline fits.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _project(root: Path | str) -> Any:
    from mlops.config import load_project

    return load_project(Path(root))


def sample_rows(root: Path | str, n: int = 60, seed: int = 0) -> Any:
    """`n` rows (seeded) of the project's data with a label: the train stage's input when it
    exists, else the ingest stage's source file."""
    from mlops.config.models import IngestWith, TrainWith
    from mlops.data.io import read_table

    project = _project(root)
    candidates = [s.args.input for s in project.stages.values() if isinstance(s.args, TrainWith)]
    candidates += [s.args.source for s in project.stages.values() if isinstance(s.args, IngestWith)]
    path = next((project.path(c) for c in candidates if project.path(c).is_file()), None)
    if path is None:
        raise FileNotFoundError(f"no data file found among {candidates}")
    df = read_table(path)
    df = df[df[project.pipeline.model.target].notna()]
    return df.sample(min(n, len(df)), random_state=seed).reset_index(drop=True)


def target(root: Path | str) -> str:
    """The label column (`model.target`)."""
    return _project(root).pipeline.model.target


def feature_steps(root: Path | str) -> list[tuple[str, Any]]:
    """`(name, unfitted transformer)` for each entry of `train.features` in params.yaml."""
    from mlops.stages.custom import feature_steps as steps

    project = _project(root)
    train = project.params.train
    if train is None:
        return []
    return steps(train.features, project.root, project.pipeline.model.trusted_types)


def training_pipeline(root: Path | str, rows: Any) -> tuple[Any, Any, Any]:
    """(unfitted pipeline, X, y) as the train stage builds them for `rows`."""
    from mlops.config.models import TrainWith
    from mlops.stages import train as t
    from mlops.stages.task import infer_task

    project = _project(root)
    params = project.params.train
    if params is None:
        raise ValueError("params.yaml has no `train:` section")
    spec = project.pipeline.model
    args = next(
        (s.args for s in project.stages.values() if isinstance(s.args, TrainWith)), TrainWith()
    )
    y = rows[spec.target]
    estimator = t._estimator(params, infer_task(y, spec.task), project)
    roles = t._roles(rows, spec.target, args)
    numeric, categorical = t.feature_columns(rows, spec.target, [*args.exclude, *roles])
    X = rows[numeric + categorical]
    pipe = t._custom_pipeline(project, params, X, y, estimator, numeric, categorical)
    return pipe, X, y

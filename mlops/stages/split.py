"""`split`: a reproducible train/test split (stratified for classification) into Parquet files."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from mlops.config.models import SplitWith
from mlops.config.task import infer_task
from mlops.data.io import read_table, write_table
from mlops.errors import UsageError

if TYPE_CHECKING:
    import pandas as pd

    from mlops.config import Project, ResolvedStage


def split_indices(
    y: pd.Series, test_size: float, seed: int, stratify: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Row positions of train and test; per class when stratified (each class keeps its share)."""
    rng = np.random.default_rng(seed)
    n = len(y)
    if not stratify:
        order = rng.permutation(n)
        n_test = max(1, round(n * test_size))
        return np.sort(order[n_test:]), np.sort(order[:n_test])
    test: list[np.ndarray] = []
    codes, _ = y.factorize()
    for code in np.unique(codes):
        members = np.flatnonzero(codes == code)
        members = members[rng.permutation(len(members))]
        k = round(len(members) * test_size)
        if len(members) > 1:
            k = min(max(k, 1), len(members) - 1)
        test.append(members[:k])
    test_idx = np.sort(np.concatenate(test)) if test else np.array([], dtype=int)
    train_idx = np.setdiff1d(np.arange(n), test_idx)
    return train_idx, test_idx


def run(project: Project, stage: ResolvedStage) -> list[str]:
    args: SplitWith = stage.args
    params = project.params.split
    target = project.pipeline.model.target
    df = read_table(project.path(args.input))
    if target not in df.columns:
        raise UsageError(
            f"target column {target!r} is not in {args.input}",
            f"Columns: {', '.join(map(str, df.columns))}. Fix `model.target` in pipeline.yaml.",
        )
    df = df[df[target].notna()].reset_index(drop=True)
    task = infer_task(df[target], project.pipeline.model.task)
    stratify = params.stratify and task == "classification"
    train_idx, test_idx = split_indices(df[target], params.test_size, params.seed, stratify)
    if len(train_idx) == 0 or len(test_idx) == 0:
        raise UsageError(f"{len(df)} rows are too few to split with test_size={params.test_size}")
    out = project.path(args.output)
    write_table(df.iloc[train_idx], out / "train.parquet")
    write_table(df.iloc[test_idx], out / "test.parquet")
    return [
        f"split: {len(train_idx)} train / {len(test_idx)} test rows "
        f"({'stratified' if stratify else 'random'}, seed {params.seed}) -> {args.output}"
    ]

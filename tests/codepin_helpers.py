"""A project with its own transformer module, and bundles pinning its code, without a pipeline
run (for the serving image's and the hot swap's tests)."""

from __future__ import annotations

import io
import json
import sys
import zipfile
from pathlib import Path
from typing import Any

from tests.serve_helpers import bundle_contents, penguins

HELPERS_PY = """def ratio(a, b):
    return a / b
"""
FEATURES_PY = """from sklearn.base import BaseEstimator, TransformerMixin

from helpers import ratio


class BillRatio(BaseEstimator, TransformerMixin):
    def fit(self, X, y=None):
        self.n_features_in_ = X.shape[1]
        return self

    def transform(self, X):
        X = X.copy()
        X["bill_ratio"] = ratio(X["bill_length_mm"], X["bill_depth_mm"])
        return X
"""


def bundle_pinning(
    project: Path, dest: Path, monkeypatch: Any, commit: str = "0" * 40
) -> tuple[Path, Any]:
    """A real bundle whose model holds the project's BillRatio (imported from `project` as its
    files are now), its code pinned as the train stage pins it; also the fitted pipeline (~1 s).
    `monkeypatch` restores `sys.path` and `sys.modules` after the test."""
    import skops.io as sio
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    from mlops.bundle import write_bundle
    from mlops.bundle.codepin import import_class, pin
    from mlops.bundle.trust import type_names
    from mlops.stages.train import build_pipeline, feature_columns

    for name in ("features", "helpers"):  # another test's module of the same name
        monkeypatch.delitem(sys.modules, name, raising=False)
    monkeypatch.setattr(sys, "path", list(sys.path))
    ratio = import_class("features:BillRatio", project)
    df = penguins()
    numeric, categorical = feature_columns(df, "species", ["year"])
    base = build_pipeline([*numeric, "bill_ratio"], categorical, LogisticRegression(max_iter=1000))
    pipe = Pipeline([("feature0_billratio", ratio()), *base.steps])
    pipe.fit(df[numeric + categorical], df["species"])
    model = sio.dumps(pipe)
    with zipfile.ZipFile(io.BytesIO(model)) as zf:
        names = type_names(json.loads(zf.read("schema.json")))
    files, meta = bundle_contents(pipe, df, numeric, categorical, model, commit)
    meta["code"] = pin(names, project)
    assert list(meta["code"]["modules"]) == ["features"]
    write_bundle(dest, files, meta)
    return dest, pipe

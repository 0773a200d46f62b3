"""Estimators other than scikit-learn's through a real pipeline run to a real server (issue 19):
XGBoost (its classifier takes only label codes: the train stage encodes the species and the
bundle answers with them), then, in the same project, a classifier class of the project's own
module named `module:Class` in params.yaml and trusted in pipeline.yaml. Each run's bundle is
served by `mlops serve` and its predictions over HTTP equal the bundle's own `predict`."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
import yaml

from mlops import api
from mlops.bundle import load_bundle
from tests.helpers import commit_all
from tests.monitor_helpers import group
from tests.serve_helpers import free_port, start_cli_server, stop

pytestmark = pytest.mark.slow
NAME = "penguins-classifier"

MYMODELS_PY = '''"""The project's own classifier."""
import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin


class ShrunkCentroids(ClassifierMixin, BaseEstimator):
    """Nearest class centroid, the centroids pulled towards the overall mean by `shrink`."""

    def __init__(self, shrink=0.1):
        self.shrink = shrink

    def fit(self, X, y):
        X, y = np.asarray(X, dtype=float), np.asarray(y)
        self.classes_ = np.unique(y)
        mean = X.mean(axis=0)
        centroids = np.stack([X[y == c].mean(axis=0) for c in self.classes_])
        self.centroids_ = mean + (1 - self.shrink) * (centroids - mean)
        self.n_features_in_ = X.shape[1]
        return self

    def predict_proba(self, X):
        d = ((np.asarray(X, dtype=float)[:, None, :] - self.centroids_[None]) ** 2).sum(axis=2)
        e = np.exp(-(d - d.min(axis=1, keepdims=True)))
        return e / e.sum(axis=1, keepdims=True)

    def predict(self, X):
        return self.classes_[self.predict_proba(X).argmax(axis=1)]
'''


def _yaml(path: Path, edit) -> None:
    data = yaml.safe_load(path.read_text())
    edit(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def _served_equals_predict(root: Path, trusted: list[str]) -> dict:
    """Serve the run's bundle with `mlops serve`; its answers over HTTP for 120 live-like rows
    must equal the bundle's own `predict` (and be mostly right). Returns `/version`."""
    import pandas as pd

    rows, labels = group(None, n=120, seed=7)
    port = free_port()
    server = start_cli_server(["--bundle", f"models/{NAME}", "--no-log"], root, port)
    try:
        http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
        r = http.post("/predict", json=rows)
        assert r.status_code == 200, r.text
        served = r.json()["predictions"]
        version = http.get("/version").json()
    finally:
        stop(server)
    bundle = load_bundle(root / f"models/{NAME}", code_root=root, trusted_types=trusted)
    expected = bundle.model.predict(pd.DataFrame(rows)[bundle.metadata["features"]])
    assert served == [str(p) for p in expected]
    assert sum(p == s for p, s in zip(served, labels, strict=True)) / len(rows) > 0.9
    return version


def test_xgboost_then_a_project_classifier_run_and_serve(trained: Path):
    root = trained  # the data stages ran once for the session: each run retrains and evaluates
    _yaml(
        root / "params.yaml",
        lambda d: d.update(train={"estimator": "xgboost.XGBClassifier", "n_estimators": 30}),
    )
    commit_all(root, "XGBoost")
    run = api.run(root)
    assert run.error is None, run.error
    meta = json.loads((root / f"models/{NAME}/metadata.json").read_text())
    assert meta["estimator"] == "xgboost.XGBClassifier"
    assert meta["classes"] == ["Adelie", "Chinstrap", "Gentoo"]  # the labels, not their codes
    assert meta["training"]["iterations"] == 30  # the booster's rounds, through the wrapper
    assert meta["params"]["train"]["n_estimators"] == 30
    assert not meta["code"]["modules"]  # nothing of the project: no code pinned
    assert {"xgboost-cpu", "xgboost"} & set(meta["code"]["packages"])  # xgboost-cpu on Linux
    version = _served_equals_predict(root, [])
    assert version["prediction_path"] == "numpy+estimator"

    # the project's own classifier, by `module:Class`, trusted by its exact name
    (root / "mymodels.py").write_text(MYMODELS_PY)
    _yaml(
        root / "params.yaml",
        lambda d: d.update(train={"estimator": "mymodels:ShrunkCentroids", "shrink": 0.05}),
    )
    _yaml(
        root / "pipeline.yaml",
        lambda d: d["model"].update(trusted_types=["mymodels.ShrunkCentroids"]),
    )
    commit_all(root, "Our own classifier")
    run = api.run(root)
    assert run.error is None, run.error
    meta = json.loads((root / f"models/{NAME}/metadata.json").read_text())
    assert meta["estimator"] == "mymodels:ShrunkCentroids"
    assert list(meta["code"]["modules"]) == ["mymodels"]
    assert "mymodels.py" in (root / "dvc.yaml").read_text()  # editing it retrains
    version = _served_equals_predict(root, ["mymodels.ShrunkCentroids"])
    assert version["prediction_path"] == "numpy+estimator"

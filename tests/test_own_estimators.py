"""Estimators other than scikit-learn's through a real pipeline run to a real server (issue 19):
XGBoost (its classifier takes only label codes: the train stage encodes the species and the
bundle answers with them), then, in the same project, a classifier class of the project's own
module named `module:Class` in params.yaml and trusted in pipeline.yaml. One `mlops serve`
follows a target: the first run's bundle, then (switched to while serving) the second's; the
predictions over HTTP equal each bundle's own `predict`."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest
import yaml

from mlops import api
from mlops.bundle import load_bundle
from mlops.deploy.target import open_target
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


def _expected(root: Path, rows: list[dict], trusted: list[str]) -> list[str]:
    """The run's bundle's own `predict` of `rows`."""
    import pandas as pd

    bundle = load_bundle(root / f"models/{NAME}", code_root=root, trusted_types=trusted)
    return [str(p) for p in bundle.model.predict(pd.DataFrame(rows)[bundle.metadata["features"]])]


def _deploy(root: Path, version: str) -> Path:
    """The run's bundle installed into a local target as `version` and switched to."""
    target = open_target(root / ".mlops/test-target", create=True)
    target.install(root / f"models/{NAME}", version, name=NAME, commit="0" * 40)
    target.switch(version)
    return target.root


def test_xgboost_then_a_project_classifier_run_and_serve(trained: Path):
    root = trained  # the data stages ran once for the session: each run retrains and evaluates
    (root / "mymodels.py").write_text(MYMODELS_PY)  # trusted from the start: the server reads
    _yaml(  # pipeline.yaml's trusted types when it starts
        root / "pipeline.yaml",
        lambda d: d["model"].update(trusted_types=["mymodels.ShrunkCentroids"]),
    )
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
    assert not meta["code"]["modules"]  # nothing of the project: no code pinned
    assert {"xgboost-cpu", "xgboost"} & set(meta["code"]["packages"])  # xgboost-cpu on Linux
    target = _deploy(root, "v1")
    rows, labels = group(None, n=120, seed=7)
    trusted = ["mymodels.ShrunkCentroids"]
    port = free_port()
    server = start_cli_server(["--target", str(target), "--poll", "0.1", "--no-log"], root, port)
    try:
        http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
        r = http.post("/predict", json=rows)
        assert r.status_code == 200 and r.json()["version"] == "v1", r.text
        assert r.json()["predictions"] == _expected(root, rows, trusted)
        assert sum(p == s for p, s in zip(r.json()["predictions"], labels, strict=True)) > 108
        assert http.get("/version").json()["prediction_path"] == "numpy+estimator"

        # the project's own classifier, by `module:Class`, trusted by its exact name
        _yaml(
            root / "params.yaml",
            lambda d: d.update(train={"estimator": "mymodels:ShrunkCentroids", "shrink": 0.05}),
        )
        commit_all(root, "Our own classifier")
        run = api.run(root)
        assert run.error is None, run.error
        meta = json.loads((root / f"models/{NAME}/metadata.json").read_text())
        assert meta["estimator"] == "mymodels:ShrunkCentroids"
        assert list(meta["code"]["modules"]) == ["mymodels"]
        assert "mymodels.py" in (root / "dvc.yaml").read_text()  # editing it retrains
        _deploy(root, "v2")  # the server switches to it: the class is imported then
        deadline = time.monotonic() + 60  # a wait for the poll, not a timing assertion
        while http.get("/version").json()["version"] != "v2":
            assert http.get("/version").json()["pending_error"] is None
            assert time.monotonic() < deadline, "the server did not switch to v2"
            time.sleep(0.1)
        r = http.post("/predict", json=rows)
        assert r.status_code == 200 and r.json()["version"] == "v2", r.text
        assert r.json()["predictions"] == _expected(root, rows, trusted)
        assert sum(p == s for p, s in zip(r.json()["predictions"], labels, strict=True)) > 108
        assert http.get("/version").json()["prediction_path"] == "numpy+estimator"
    finally:
        stop(server)

"""Your own model code, end to end (issue 19): a project transformer module and LightGBM go
through run, register, deploy, serve (predictions over HTTP equal the model's own) and monitor;
a change of the transformer's source makes serving and the smoke test refuse the version
(exit 6); a `cmd:` training script saving with `mlops.stages.save_model` goes the same way."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import yaml

from mlops import api
from mlops.bundle import load_bundle
from mlops.bundle.codepin import CodeMismatchError
from mlops.deploy.smoke import smoke_test
from mlops.deploy.target import DEPLOYMENT
from tests.helpers import commit_all
from tests.monitor_helpers import group
from tests.serve_helpers import free_port, start_cli_server, stop

pytestmark = pytest.mark.slow
NAME = "penguins-classifier"

FEATURES_PY = '''"""The project's own features."""
from sklearn.base import BaseEstimator, TransformerMixin


class BillRatio(BaseEstimator, TransformerMixin):
    """Adds the ratio of bill length to bill depth."""

    def fit(self, X, y=None):
        self.n_features_in_ = X.shape[1]
        return self

    def transform(self, X):
        X = X.copy()
        X["bill_ratio"] = X["bill_length_mm"] / X["bill_depth_mm"]
        return X
'''

TRAIN_PY = '''"""Our own training script: LightGBM, saved for the built-in evaluate stage."""
import lightgbm as lgb
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder

from mlops.stages import save_model

DATA = "data/split/train.parquet"
df = pd.read_parquet(DATA).drop(columns=["year"])
X, y = df.drop(columns=["species"]), df["species"]
categorical = ["island", "sex"]
numeric = [c for c in X.columns if c not in categorical]
onehot = make_pipeline(
    SimpleImputer(strategy="most_frequent"),
    OneHotEncoder(handle_unknown="ignore", sparse_output=False),
)
pre = ColumnTransformer([("num", "passthrough", numeric), ("cat", onehot, categorical)])
model = Pipeline([("preprocess", pre), ("model", lgb.LGBMClassifier(n_estimators=30, verbose=-1))])
model.fit(X, y)
save_model(model, df, data=DATA)
'''


def _yaml(path: Path, edit) -> None:
    data = yaml.safe_load(path.read_text())
    edit(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def _env() -> dict[str, str]:
    bindir = str(Path(sys.executable).parent)  # `python` in a cmd: stage is this venv's
    return dict(os.environ, PATH=bindir + os.pathsep + os.environ["PATH"])


def _predict_over_http(root: Path, rows: list[dict]) -> tuple[list, dict, subprocess.Popen]:
    port = free_port()
    server = start_cli_server(["--env", "staging", "--poll", "0.1"], root, port)
    http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
    r = http.post("/predict", json=rows)
    assert r.status_code == 200, r.text
    return r.json()["predictions"], http.get("/version").json(), server


def _expected(root: Path, rows: list[dict]) -> list:
    import pandas as pd

    bundle = load_bundle(
        root / f"models/{NAME}", code_root=root, trusted_types=["features.BillRatio"]
    )
    frame = pd.DataFrame(rows)[bundle.metadata["features"]]
    return [str(p) for p in bundle.model.predict(frame)]


def test_custom_transformer_and_lightgbm_run_register_deploy_serve_monitor(
    tmp_path: Path, _initialised_template: Path, cli
):
    root = tmp_path / "project"
    shutil.copytree(_initialised_template, root, symlinks=True)
    (root / "features.py").write_text(FEATURES_PY)
    _yaml(
        root / "params.yaml",
        lambda d: d.update(
            train={
                "estimator": "lightgbm.LGBMClassifier",
                "features": ["features:BillRatio"],
                "n_estimators": 30,
                "verbose": -1,
            }
        ),
    )

    def pipeline(d):
        d["model"]["trusted_types"] = ["features.BillRatio"]
        d["stages"]["evaluate"]["gates"]["converged"] = True

    _yaml(root / "pipeline.yaml", pipeline)
    commit_all(root, "LightGBM after our own BillRatio feature")
    run = api.run(root)
    assert run.error is None, run.error
    meta = json.loads((root / f"models/{NAME}/metadata.json").read_text())
    assert meta["estimator"] == "lightgbm.LGBMClassifier"
    assert list(meta["code"]["modules"]) == ["features"]
    assert "lightgbm" in meta["code"]["packages"]
    assert meta["training"]["converged"] is True and meta["training"]["iterations"] == 30
    gate = next(g for g in meta["verdict"]["gates"] if g["metric"] == "converged")
    assert gate["passed"] and gate["rule"] == "converged"
    curve = (root / "reports/plots/training_curve.csv").read_text().splitlines()
    assert curve[0] == "step,train multi_logloss" and len(curve) == 31
    assert "features.py" in (root / "dvc.yaml").read_text()  # the train stage depends on it
    api.commit(root)
    assert api.register(root).version == "v0.0.1"
    assert api.deploy(root, "staging").version == "v0.0.1"

    rows, labels = group(None, n=120, seed=5)
    predictions, version, server = _predict_over_http(root, rows)
    try:
        assert predictions == _expected(root, rows)
        assert version["prediction_path"] == "pipeline"  # a project step: the exact pipeline
        assert sum(p == s for p, s in zip(predictions, labels, strict=True)) / len(rows) > 0.9
    finally:
        stop(server)
    r = cli(["monitor", "--env", "staging", "--json"], cwd=root)
    report = json.loads(r.output)
    assert r.exit_code == 0, report.get("summary")
    assert report["version"] == "v0.0.1" and report["traffic"]["live_rows"] == len(rows)

    # the transformer changes after registration: v0.0.1's code is no longer what is installed
    (root / "features.py").write_text(FEATURES_PY.replace("bill_length_mm", "bill_length_mm "))
    proc = subprocess.run(
        [sys.executable, "-m", "mlops", "serve", "--env", "staging", "--port", str(free_port())],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 6, proc.stdout + proc.stderr
    assert "features.py: sha256" in proc.stderr and "trained with" in proc.stderr
    assert "commit it was trained at" in proc.stderr  # what to do
    installed = root / ".mlops/envs/staging/versions/v0.0.1"
    with pytest.raises(CodeMismatchError) as refused:
        smoke_test(
            installed,
            extra_files=(DEPLOYMENT,),
            trusted_types=["features.BillRatio"],
            code_root=root,
        )
    assert refused.value.exit_code == 6


def test_a_cmd_training_script_with_save_model_goes_to_serving(
    tmp_path: Path, _initialised_template: Path, monkeypatch
):
    root = tmp_path / "project"
    shutil.copytree(_initialised_template, root, symlinks=True)
    (root / "train.py").write_text(TRAIN_PY)

    def pipeline(d):
        d["stages"]["train"] = {
            "cmd": "python train.py",
            "deps": ["train.py", "data/split/train.parquet"],
            "outs": [f"build/{NAME}"],
        }

    _yaml(root / "pipeline.yaml", pipeline)
    commit_all(root, "Our own LightGBM training script")
    monkeypatch.setenv("PATH", _env()["PATH"])
    run = api.run(root)
    assert run.error is None, run.error
    fit = json.loads((root / f"build/{NAME}/fit.json").read_text())
    assert fit["saved_by"] == "save_model" and fit["estimator"] == "lightgbm.sklearn.LGBMClassifier"
    meta = json.loads((root / f"models/{NAME}/metadata.json").read_text())
    assert meta["metrics"]["accuracy"] > 0.9 and meta["verdict"]["blessed"]
    api.commit(root)
    assert api.register(root).version == "v0.0.1"
    assert api.deploy(root, "staging").version == "v0.0.1"
    rows, _ = group(None, n=50, seed=6)
    predictions, version, server = _predict_over_http(root, rows)
    try:
        assert predictions == _expected(root, rows)
        # the fast path: NumPy preprocessing, then LightGBM's own predict
        assert version["prediction_path"] == "numpy+estimator"
    finally:
        stop(server)

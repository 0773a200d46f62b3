"""Own model code without a pipeline run: LightGBM/XGBoost through the allow-list and the
serving fast path, the code pin and its refusals, the trust check of project classes,
`save_model`'s refusals, training curves and ConvergenceWarning, the `converged` gate."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from mlops.bundle import BundleError, load_model_file
from mlops.bundle.archive import dumps
from mlops.bundle.codepin import CodeMismatchError, import_class, pin, verify_code
from mlops.bundle.trust import audit
from mlops.config.models import Stage
from mlops.errors import UsageError
from mlops.stages import save_model
from mlops.stages.custom import check_trusted, curve_csv, fit_reporting, training_record
from mlops.stages.evaluate import check_gates
from mlops.stages.train import build_pipeline, feature_columns, input_schema
from tests.serve_helpers import penguins

FEATURES_PY = """from sklearn.base import BaseEstimator, TransformerMixin


class Twice(BaseEstimator, TransformerMixin):
    def fit(self, X, y=None):
        self.n_features_in_ = X.shape[1]
        return self

    def transform(self, X):
        return X * 2
"""


def _frame():
    df = penguins().dropna(subset=["sex"]).reset_index(drop=True)
    numeric, categorical = feature_columns(df, "species", ["year"])
    return df, numeric, categorical


def _predictor(pipe, df, numeric, categorical):
    from mlops.bundle.inputs import InputSpec
    from mlops.bundle.predictor import Predictor

    spec = InputSpec.from_schema(input_schema(df, numeric, categorical))
    return Predictor.load(pipe, spec)


@pytest.mark.parametrize("library", ["lightgbm", "xgboost"])
def test_boosted_models_load_through_the_allow_list_and_serve_on_the_fast_path(
    library: str, tmp_path: Path
):
    import lightgbm
    import xgboost
    from sklearn.preprocessing import LabelEncoder

    df, numeric, categorical = _frame()
    if library == "lightgbm":
        est, y = lightgbm.LGBMClassifier(n_estimators=20, verbose=-1), df["species"]
    else:  # XGBoost's classifier takes encoded labels
        est, y = xgboost.XGBClassifier(n_estimators=20), LabelEncoder().fit_transform(df["species"])
    pipe = build_pipeline(numeric, categorical, est)
    record = fit_reporting(pipe, df[numeric + categorical], y)
    assert record["iterations"] == 20 and record["converged"] and len(record["curves"]) == 1
    path = tmp_path / "model.skops"
    path.write_bytes(dumps(pipe))
    refused, names = audit(path)
    assert refused == [] and any(n.endswith(".Booster") for n in names)
    loaded = load_model_file(path)
    X = df[numeric + categorical]
    assert (loaded.predict(X) == pipe.predict(X)).all()
    predictor = _predictor(loaded, df, numeric, categorical)
    assert predictor.mode == "numpy+estimator"  # NumPy preprocessing, the booster's predict
    cols = {c: X[c].tolist() for c in X.columns}
    labels, _ = predictor.predict(cols, len(X))
    assert [str(v) for v in labels] == [str(v) for v in pipe.predict(X)]


def test_a_linear_model_keeps_the_numpy_path_and_a_project_step_falls_back(
    tmp_path: Path, monkeypatch
):
    from sklearn.linear_model import LogisticRegression

    from mlops.stages.custom import with_features

    (tmp_path / "ownfeatures.py").write_text(
        FEATURES_PY.replace("X * 2", "X.assign(b=X['body_mass_g'] * 2)")
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    df, numeric, categorical = _frame()
    X, y = df[numeric + categorical], df["species"]
    linear = build_pipeline(numeric, categorical, LogisticRegression(max_iter=1000)).fit(X, y)
    assert _predictor(linear, df, numeric, categorical).mode == "numpy"
    cls = import_class("ownfeatures:Twice", tmp_path)
    pipe = with_features(
        [("feature0_twice", cls())], X, y, LogisticRegression(max_iter=1000), True,
        build_pipeline, feature_columns,
    )  # fmt: skip
    pipe.fit(X, y)
    predictor = _predictor(pipe, df, numeric, categorical)
    assert predictor.mode == "pipeline"  # a step mlops cannot replay: the exact pipeline
    labels, _ = predictor.predict({c: X[c].tolist() for c in X.columns}, len(X))
    assert list(labels) == list(pipe.predict(X))
    sys.modules.pop("ownfeatures", None)


def test_the_code_pin_refuses_changed_missing_and_hostile_module_entries(tmp_path: Path):
    root = tmp_path / "project"
    (root / "pkg").mkdir(parents=True)
    (root / "pkg/__init__.py").write_text("")
    (root / "pkg/feats.py").write_text(FEATURES_PY)
    code = pin(["pkg.feats.Twice", "sklearn.pipeline.Pipeline", "numpy.ndarray"], root)
    assert set(code["modules"]["pkg.feats"]["files"]) == {"pkg/__init__.py", "pkg/feats.py"}
    assert "scikit-learn" in code["packages"] and code["hash"]
    verify_code(code, root, Path("bundle"))  # unchanged: loads

    (root / "pkg/__init__.py").write_text("import os\n")  # a parent package runs too
    with pytest.raises(CodeMismatchError) as exc:
        verify_code(code, root, Path("bundle"))
    assert exc.value.exit_code == 6 and "pkg/__init__.py: sha256" in exc.value.message
    assert "commit it was trained at" in exc.value.hint

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    sys.path.remove(str(root.resolve()))  # put there by the first (successful) check
    with pytest.raises(CodeMismatchError, match=r"pkg\.feats: not installed"):
        verify_code(code, elsewhere, Path("bundle"))
    hostile = {"modules": {"../../etc/passwd": {"files": {"x": "0"}}, "pkg": "nope"}}
    with pytest.raises(BundleError) as exc:
        verify_code(hostile, root, Path("bundle"))
    assert "not a module name" in exc.value.message and "no file hashes" in exc.value.message
    verify_code({"modules": {}}, root, Path("bundle"))  # nothing pinned: nothing to check


def test_project_classes_must_be_trusted_and_must_not_be_shadowed(tmp_path: Path):
    (tmp_path / "feats.py").write_text(FEATURES_PY)
    with pytest.raises(UsageError, match="does not trust it") as exc:
        check_trusted("feats:Twice", tmp_path, [])
    assert "feats.Twice" in exc.value.hint
    check_trusted("feats:Twice", tmp_path, ["feats.Twice"])
    check_trusted("sklearn.linear_model.Ridge", tmp_path, [])  # not the project's
    (tmp_path / "json.py").write_text("class Shadow: pass\n")  # json is imported already
    with pytest.raises(UsageError, match="not from the project"):
        import_class("json:Shadow", tmp_path)
    with pytest.raises(UsageError, match="not a class path"):
        import_class("feats:../x", tmp_path)
    with pytest.raises(UsageError, match="is not a class"):
        import_class("os.path:join", tmp_path)
    sys.modules.pop("feats", None)


def test_save_model_writes_what_evaluate_takes_and_refuses_untrusted_types(project: Path):
    from sklearn.linear_model import LogisticRegression

    with pytest.raises(ImportError, match=r"from mlops\.stages import save_model"):
        from mlops.bundle import save_model as _old_path  # noqa: F401 - moved (issue 18)

    df, numeric, categorical = _frame()
    with pytest.raises(UsageError, match="not fitted"):
        save_model(build_pipeline(numeric, categorical, LogisticRegression()), df, root=project)
    with pytest.raises(UsageError, match="target column"):
        save_model(LogisticRegression(), df.drop(columns=["species"]), root=project)
    pipe = build_pipeline(numeric, categorical, LogisticRegression(max_iter=1000))
    pipe.fit(df[numeric + categorical], df["species"])
    out = save_model(pipe, df.drop(columns=["year"]), root=project)
    fit = json.loads((out / "fit.json").read_text())
    assert fit["features"] == numeric + categorical and fit["task"] == "classification"
    assert fit["classes"] == ["Adelie", "Chinstrap", "Gentoo"]
    assert fit["code"]["modules"] == {} and fit["training"]["converged"] is True
    assert {p.name for p in out.iterdir()} == {
        "fit.json", "model.skops", "schema.json", "reference.json",
    }  # fmt: skip

    (project / "ownfeat.py").write_text(FEATURES_PY)
    sys.path.insert(0, str(project))
    try:
        from ownfeat import Twice
        from sklearn.pipeline import Pipeline

        X = df[["bill_length_mm", "body_mass_g"]]
        model = Pipeline([("twice", Twice()), ("lr", LogisticRegression(max_iter=1000))])
        model.fit(X, df["species"])
        with pytest.raises(BundleError, match=r"ownfeat\.Twice") as exc:
            save_model(model, df[[*X.columns, "species"]], root=project)
        assert exc.value.exit_code == 6 and not (out / "model.skops").exists()
    finally:
        sys.path.remove(str(project))
        sys.modules.pop("ownfeat", None)


def test_convergence_warnings_curves_and_the_converged_gate():
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier

    df, numeric, categorical = _frame()
    X, y = df[numeric + categorical], df["species"]
    record = fit_reporting(
        build_pipeline(numeric, categorical, LogisticRegression(max_iter=2)), X, y
    )
    assert record["converged"] is False and "ConvergenceWarning" not in record["warnings"][0]
    assert "max_iter" in record["warnings"][0] or "iterations" in record["warnings"][0]
    mlp = build_pipeline(numeric, categorical, MLPClassifier(max_iter=300, random_state=0))
    record = fit_reporting(mlp, X, y)
    assert "loss" in record["curves"] and record["iterations"] == len(record["_curves"]["loss"])
    text = curve_csv({"loss": [0.5, 0.25], "score": [1.0]})
    assert text == "step,loss,score\n1,0.5,1.0\n2,0.25,\n"
    assert training_record(LogisticRegression(), [])["curves"] == {}

    gates = Stage(uses="evaluate", gates={"converged": True, "accuracy": {"min": 0.5}}).gates
    (converged, _) = check_gates(gates, {"accuracy": 0.9, "converged": 0.0})
    assert converged["metric"] == "converged" and converged["passed"] is False
    with pytest.raises(ValueError, match="takes `true`"):
        Stage(uses="evaluate", gates={"converged": False})


def test_init_scaffolds_tests_that_pass_and_catch_a_transformer_that_drops_rows(project: Path):
    import subprocess

    import yaml

    def pytest_in_project() -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
            cwd=project,
            capture_output=True,
            text=True,
            timeout=300,
        )

    assert (project / "tests/test_model.py").is_file()
    ci = yaml.safe_load((project / ".gitlab-ci.yml").read_text())
    assert "python -m pytest" in ci["test"]["script"]  # the CI template's test job runs it
    proc = pytest_in_project()
    assert proc.returncode == 0 and "2 passed" in proc.stdout, proc.stdout + proc.stderr

    (project / "feats.py").write_text(FEATURES_PY.replace("X * 2", "X.dropna()"))
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["train"]["features"] = ["feats:Twice"]
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    pipeline = yaml.safe_load((project / "pipeline.yaml").read_text())
    pipeline["model"]["trusted_types"] = ["feats.Twice"]
    (project / "pipeline.yaml").write_text(yaml.safe_dump(pipeline))
    proc = pytest_in_project()
    assert proc.returncode == 1, proc.stdout
    assert "feature0_twice fails on missing values" in proc.stdout  # dropna() drops the row


def test_a_booster_node_smuggling_a_builtin_is_refused(tmp_path: Path):
    import io
    import zipfile

    import lightgbm

    from mlops.bundle.archive import canonical

    df, numeric, _ = _frame()
    est = lightgbm.LGBMClassifier(n_estimators=3, verbose=-1).fit(df[numeric], df["species"])
    with zipfile.ZipFile(io.BytesIO(dumps(est))) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    schema = json.loads(members["schema.json"])
    booster = schema["content"]["content"]["_Booster"]
    assert booster["__class__"] == "Booster"
    # an extra attribute of the booster's state: `builtins.eval` as a type reference
    booster["content"]["content"]["pandas_categorical"] = {
        "__class__": "eval", "__module__": "builtins", "__loader__": "TypeNode", "__id__": 999,
    }  # fmt: skip
    members["schema.json"] = json.dumps(schema).encode()
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    path = tmp_path / "model.skops"
    path.write_bytes(canonical(out.getvalue()))
    with pytest.raises(BundleError, match=r"builtins\.eval") as exc:
        load_model_file(path, ["builtins.eval"])  # listing it in trusted_types changes nothing
    assert exc.value.exit_code == 6

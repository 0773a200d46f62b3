"""Hostile model files are refused before any of their objects is built, by every loader: the
library, `mlops serve` and `mlops deploy`'s smoke test (exit 6, each type named, no code run);
what mlops itself trains still loads."""

from __future__ import annotations

import io
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from mlops.bundle import BundleError, load_bundle, load_model_file, verify_bundle, write_bundle
from mlops.errors import ExitCode
from tests.security import payloads
from tests.serve_helpers import free_port
from tests.test_deploy import _released_template, deploy, dvc, target  # noqa: F401

KINDS = sorted(payloads.KINDS)


@pytest.mark.parametrize("kind", KINDS)
def test_each_payload_is_real_when_trusted(tmp_path: Path, kind: str):
    """Control: trusting what the file names (as a prefix rule did) runs the payload."""
    import numpy as np
    import pandas as pd
    import skops.io as sio

    marker = tmp_path / "marker"
    data = payloads.model_bytes(kind, marker)
    if kind == "pickle-inside":
        member = next(n for n in zipfile.ZipFile(io.BytesIO(data)).namelist() if n.endswith(".npy"))
        np.load(io.BytesIO(zipfile.ZipFile(io.BytesIO(data)).read(member)), allow_pickle=True)
    else:
        model = sio.loads(data, trusted=sio.get_untrusted_types(data=data))
        if kind in payloads.RUN_ON_PREDICT:
            src = payloads.code(marker)
            with pytest.raises(TypeError):  # the payload ran, then the pipeline broke
                model.predict(pd.DataFrame({src: [src, src]}))
    if kind == "getattr":
        assert not marker.exists()  # named, not run: getattr alone takes no code
    else:
        assert marker.exists()  # written by the payload (methodcaller: the frame as CSV)


@pytest.mark.parametrize("kind", KINDS)
def test_the_library_loader_refuses_each_kind_naming_the_types(tmp_path: Path, kind: str):
    marker = tmp_path / "marker"
    bundle = payloads.write_hostile_bundle(tmp_path / "bundle", kind, marker)
    verify_bundle(bundle)  # the hashes are right: only the type check stands in the way
    with pytest.raises(BundleError) as info:
        load_bundle(bundle)
    assert info.value.exit_code == ExitCode.DEPLOY_FAILED == 6
    for name in payloads.refused_names(kind):
        assert name in info.value.message
    assert "model.trusted_types" in (info.value.hint or "")
    with pytest.raises(BundleError):  # listing a builtins name does not help
        load_bundle(bundle, trusted_types=["builtins.exec", "builtins.eval", "builtins.min"])
    assert not marker.exists()


def test_a_project_type_loads_only_when_listed_by_exact_name(tmp_path: Path):
    import skops.io as sio

    f = tmp_path / "model.skops"
    f.write_bytes(sio.dumps({"scale": payloads.Harmless(3.0)}))
    name = "tests.security.payloads.Harmless"
    with pytest.raises(BundleError, match=name):
        load_model_file(f)
    with pytest.raises(BundleError, match=name):
        load_model_file(f, ["tests.security.payloads"])  # a module is not a type
    assert load_model_file(f, [name])["scale"].factor == 3.0


def test_trusted_types_in_pipeline_yaml_refuses_builtins(project: Path, cli):
    text = (project / "pipeline.yaml").read_text()
    assert "\nmodel:" in text
    lines = text.splitlines()
    i = next(n for n, line in enumerate(lines) if line.startswith("model:"))
    lines.insert(i + 1, "  trusted_types: [builtins.exec]")
    (project / "pipeline.yaml").write_text("\n".join(lines) + "\n")
    result = cli(["check"], cwd=project)
    assert result.exit_code == ExitCode.USAGE, result.output
    assert "trusted_types" in result.output and "builtins" in result.output
    lines[i + 1] = "  trusted_types: [mypackage.transformers.Clip]"
    (project / "pipeline.yaml").write_text("\n".join(lines) + "\n")
    from mlops.api import serve_trusted_types

    assert serve_trusted_types(project) == ["mypackage.transformers.Clip"]


def test_a_malformed_model_file_is_refused_not_a_crash(tmp_path: Path):
    for i, data in enumerate([b"not a zip", _zip({"schema.json": b"[1, 2"}), _zip({})]):
        f = tmp_path / f"m{i}.skops"
        f.write_bytes(data)
        with pytest.raises(BundleError) as info:
            load_model_file(f)
        assert info.value.exit_code == ExitCode.DEPLOY_FAILED


def _zip(members: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return out.getvalue()


@pytest.mark.parametrize("kind", KINDS)
def test_mlops_serve_refuses_each_kind_before_the_port_opens(tmp_path: Path, kind: str):
    marker = tmp_path / "marker"
    bundle = payloads.write_hostile_bundle(tmp_path / "bundle", kind, marker)
    proc = subprocess.run(
        [sys.executable, "-m", "mlops", "serve", "--bundle", str(bundle), "--no-log",
         "--port", str(free_port())],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    out = " ".join((proc.stdout + proc.stderr).split())
    assert proc.returncode == ExitCode.DEPLOY_FAILED, out
    for name in payloads.refused_names(kind):
        assert name in out
    assert "Traceback" not in out
    assert not marker.exists()


@pytest.fixture
def released_copy(tmp_path: Path, _released_template: Path) -> Path:  # noqa: F811
    """A copy of tests/test_deploy.py's project with two registered versions."""
    import shutil

    dest = tmp_path / "released"
    shutil.copytree(_released_template, dest, symlinks=True)
    return dest


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["exec", "unknown-module", "pickle-inside"])
def test_mlops_deploy_refuses_a_registered_hostile_model_at_its_smoke_test(
    released_copy: Path, cli, kind: str
):
    """A colleague registers a hostile model through the whole flow (DVC md5s and sha256s
    right): deploy installs it, its smoke test refuses it (exit 6), the live version stays."""
    import os

    from mlops.bundle import read_metadata

    released = released_copy
    from tests.registry_helpers import NAME

    result, _ = deploy(cli, released, "--env", "staging")
    assert result.exit_code == 0, result.output
    marker = released.parent / "marker"
    bundle = released / "models" / NAME
    meta = read_metadata(bundle)
    files = {n: (bundle / n).read_bytes() for n in meta["files"]}
    files["model.skops"] = payloads.model_bytes(kind, marker)
    write_bundle(bundle, files, {k: v for k, v in meta.items() if k not in ("files", "format")})
    dvc(released, "commit", "-f", "evaluate")
    assert cli(["commit"], cwd=released).exit_code == 0
    assert cli(["register", "--force"], cwd=released).exit_code == 0

    t = target(released)
    result, out = deploy(cli, released, "--env", "staging", "--version", "v0.0.3")
    assert result.exit_code == ExitCode.DEPLOY_FAILED, result.output
    assert out["details"]["step"] == "smoke"
    for name in payloads.refused_names(kind):
        assert name in out["message"]
    assert os.readlink(t.current_link) == "versions/v0.0.2"
    assert not marker.exists()


ESTIMATORS = {
    "classification": [
        "sklearn.linear_model.LogisticRegression",
        "sklearn.ensemble.RandomForestClassifier",
        "sklearn.ensemble.GradientBoostingClassifier",
        "sklearn.ensemble.HistGradientBoostingClassifier",
        "sklearn.ensemble.ExtraTreesClassifier",
        "sklearn.tree.DecisionTreeClassifier",
        "sklearn.neighbors.KNeighborsClassifier",
        "sklearn.svm.SVC",
        "sklearn.linear_model.SGDClassifier",
        "sklearn.naive_bayes.GaussianNB",
        "sklearn.neural_network.MLPClassifier",
    ],
    "regression": [
        "sklearn.linear_model.Ridge",
        "sklearn.linear_model.LinearRegression",
        "sklearn.linear_model.Lasso",
        "sklearn.ensemble.RandomForestRegressor",
        "sklearn.ensemble.GradientBoostingRegressor",
        "sklearn.ensemble.HistGradientBoostingRegressor",
        "sklearn.tree.DecisionTreeRegressor",
        "sklearn.neighbors.KNeighborsRegressor",
        "sklearn.svm.SVR",
        "sklearn.linear_model.SGDRegressor",
    ],
}


@pytest.mark.slow
@pytest.mark.parametrize("task", sorted(ESTIMATORS))
def test_every_estimator_mlops_trains_loads_and_predicts_the_same(tmp_path: Path, task: str):
    """The allow-list is complete for the pipelines `train.build_pipeline` builds."""
    import numpy as np
    import skops.io as sio

    from mlops.stages.train import build_pipeline, feature_columns, import_estimator
    from tests.serve_helpers import penguins

    df = penguins()
    target = "species" if task == "classification" else "body_mass_g"
    df = df[df[target].notna()]
    numeric, categorical = feature_columns(df, target, ["year"])
    X = df[numeric + categorical]
    for path in ESTIMATORS[task]:
        kwargs = {"max_iter": 2000} if path.endswith("MLPClassifier") else {}
        pipe = build_pipeline(numeric, categorical, import_estimator(path)(**kwargs))
        pipe.fit(X, df[target])
        dest = tmp_path / path
        write_bundle(dest, {"model.skops": sio.dumps(pipe), "schema.json": b"{}"}, {"name": "m"})
        loaded = load_bundle(dest).model
        assert np.array_equal(loaded.predict(X.head(20)), pipe.predict(X.head(20))), path

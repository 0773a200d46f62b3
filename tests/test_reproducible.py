"""Byte-reproducible builds: the same commit, data and params give the same bytes."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from pathlib import Path

import pytest
import yaml

from mlops.bundle.archive import EPOCH, canonical, dumps
from tests.helpers import git


def _outs(root: Path) -> dict[str, str]:
    lock = yaml.safe_load((root / "dvc.lock").read_text())
    return {
        o["path"]: o.get("md5") or o.get("hash")
        for body in lock["stages"].values()
        for o in body.get("outs", [])
    }


def _fitted():
    from sklearn.datasets import load_iris
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = load_iris(return_X_y=True)
    steps = [("scale", StandardScaler()), ("m", RandomForestClassifier(3, random_state=0))]
    return Pipeline(steps).fit(X, y), X


def test_archive_is_deterministic_and_loads():
    import skops.io as sio

    model, X = _fitted()
    first, second = dumps(model), dumps(model)
    assert first == second
    # skops' own dumps differs run to run (ids and clock): that is what canonical() removes
    assert canonical(sio.dumps(model)) == first
    with zipfile.ZipFile(io.BytesIO(first)) as z:
        names = z.namelist()
        assert names[0] == "schema.json" and names[1:] == sorted(names[1:])
        assert all(i.date_time == EPOCH for i in z.infolist())
        schema = json.loads(z.read("schema.json"))
    assert "0001.npy" in names
    loaded = sio.loads(first, trusted=sio.get_untrusted_types(data=first))
    assert (loaded.predict(X) == model.predict(X)).all()
    assert schema["__loader__"] == "ObjectNode"


def test_archive_keeps_shared_references():
    """Two attributes that are the same array stay one object (skops' CachedNode by id)."""
    import numpy as np
    import skops.io as sio
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(np.arange(12.0).reshape(6, 2))
    scaler.shared_a_ = scaler.shared_b_ = np.array([1.0, 2.0])
    data = dumps(scaler)
    loaded = sio.loads(data, trusted=sio.get_untrusted_types(data=data))
    assert loaded.shared_a_ is loaded.shared_b_
    assert (loaded.scale_ == scaler.scale_).all()


def test_archive_refuses_a_broken_archive():
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("schema.json", json.dumps({"__loader__": "NdArrayNode", "file": "9.npy"}))
    with pytest.raises(ValueError, match=r"missing members: 9\.npy"):
        canonical(buf.getvalue())
    with pytest.raises(ValueError, match="not a skops archive"):
        canonical(zipfile_bytes({"x.txt": b"x"}))


def zipfile_bytes(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buf.getvalue()


@pytest.mark.slow
def test_two_fresh_clones_build_identical_outputs(project: Path, tmp_path: Path):
    from mlops import api

    origin = tmp_path / "origin.git"
    git(tmp_path, "clone", "-q", "--bare", str(project), str(origin))
    hashes = []
    for name in ("one", "two"):
        clone = tmp_path / name
        git(tmp_path, "clone", "-q", str(origin), str(clone))
        result = api.run(clone)
        assert result.error is None, result.error
        hashes.append(_outs(clone))
        # the volatile facts went to the run record, not into the outputs
        record = result.to_dict()
        assert record["outcome"] == "ok"
        fit = json.loads((clone / "build/penguins-classifier/fit.json").read_text())
        assert "fit_seconds" not in fit and "git" not in fit
        meta = json.loads((clone / "models/penguins-classifier/metadata.json").read_text())
        assert "created" not in meta and "git" not in meta
        assert result.record.extra["facts"]["train"]["fit_seconds"] >= 0
    one, two = hashes
    differ = {p: (one.get(p), two.get(p)) for p in set(one) | set(two) if one.get(p) != two.get(p)}
    assert not differ, differ
    assert any(p.startswith("models/") for p in one) and any(p.startswith("build/") for p in one)
    digest = hashlib.sha256((tmp_path / "one/models/penguins-classifier/model.skops").read_bytes())
    assert (
        digest.hexdigest()
        == hashlib.sha256(
            (tmp_path / "two/models/penguins-classifier/model.skops").read_bytes()
        ).hexdigest()
    )


@pytest.mark.slow
def test_reproduce_a_registered_version(trained: Path, cli):
    from tests.registry_helpers import NAME

    assert cli(["register"], cwd=trained).exit_code == 0
    result = cli(["reproduce", f"{NAME}@v0.0.1", "--json"], cwd=trained)
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["identical"] is True and out["commit"] == git(trained, "rev-parse", "HEAD")
    assert {s["status"] for s in out["stages"]} == {"ran"}  # recomputed, nothing restored
    assert {"ingest", "train", "evaluate"} <= {s["name"] for s in out["stages"]}
    paths = {o["path"] for o in out["outputs"]}
    assert {"models/penguins-classifier", "build/penguins-classifier"} <= paths
    assert not list((trained / ".mlops/reproduce").iterdir())  # the scratch tree is gone
    assert git(trained, "worktree", "list").count("\n") == 0
    assert git(trained, "status", "--porcelain") == ""


@pytest.mark.slow
def test_reproduce_names_what_differs(trained: Path, cli):
    """A version whose dvc.lock records other bytes: exit 6, the outputs and files that differ."""
    from mlops.errors import ExitCode
    from tests.registry_helpers import NAME, tag

    lock = yaml.safe_load((trained / "dvc.lock").read_text())
    build = next(o for o in lock["stages"]["train"]["outs"])["md5"]
    for out in lock["stages"]["evaluate"]["outs"]:
        if out["path"] == "models/penguins-classifier":
            out["md5"] = build  # the recorded bundle is another directory in the cache
        if out["path"] == "reports/metrics.json":
            out["md5"] = "0" * 32
    (trained / "dvc.lock").write_text(yaml.safe_dump(lock, sort_keys=False))
    git(trained, "commit", "-q", "-am", "a lock that records other outputs")
    tag(trained, f"{NAME}@v0.0.9", message=f"Registering artifact {NAME} version v0.0.9\n")
    result = cli(["reproduce", f"{NAME}@v0.0.9"], cwd=trained)
    assert result.exit_code == ExitCode.DEPLOY_FAILED, result.output
    text = " ".join(result.output.split())
    assert "did not rebuild byte for byte: 2 of" in text
    assert "reports/metrics.json" in text and "models/penguins-classifier/fit.json: differs" in text
    assert "models/penguins-classifier/model.skops" not in text  # the same model bytes
    bad = cli(["reproduce", f"{NAME}@v9.9.9"], cwd=trained)
    assert bad.exit_code == ExitCode.GIT_STATE and "not registered" in bad.output

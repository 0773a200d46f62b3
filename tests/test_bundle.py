"""Model bundles: complete or absent, and refused when a file does not match its hash."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlops.bundle import BundleError, load_bundle, verify_bundle, write_bundle
from mlops.errors import ExitCode


def make(tmp_path: Path) -> Path:
    import skops.io as sio
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression().fit([[0.0], [1.0], [2.0], [3.0]], [0, 0, 1, 1])
    dest = tmp_path / "bundle"
    write_bundle(dest, {"model.skops": sio.dumps(model), "schema.json": b"{}"}, {"name": "m"})
    return dest


def test_write_then_load_round_trip(tmp_path: Path):
    dest = make(tmp_path)
    meta = json.loads((dest / "metadata.json").read_text())
    assert set(meta["files"]) == {"model.skops", "schema.json"}
    bundle = load_bundle(dest)
    assert bundle.name == "m"
    assert list(bundle.model.predict([[0.0], [3.0]])) == [0, 1]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp dirs left


@pytest.mark.parametrize("tamper", ["modify", "delete", "add"])
def test_tampered_bundle_is_refused(tmp_path: Path, tamper: str):
    dest = make(tmp_path)
    if tamper == "modify":
        (dest / "schema.json").write_text('{"x": 1}')
    elif tamper == "delete":
        (dest / "schema.json").unlink()
    else:
        (dest / "extra.pkl").write_bytes(b"boo")
    with pytest.raises(BundleError) as info:
        verify_bundle(dest)
    assert info.value.exit_code == ExitCode.DEPLOY_FAILED
    with pytest.raises(BundleError):
        load_bundle(dest)


def test_untrusted_types_are_not_loaded(tmp_path: Path):
    import skops.io as sio

    dest = tmp_path / "bundle"
    write_bundle(dest, {"model.skops": sio.dumps({"f": Path("x")})}, {"name": "m"})
    with pytest.raises(BundleError, match="does not load"):
        load_bundle(dest)

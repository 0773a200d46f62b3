"""The serving image's project code (`mlops.bundle.imagecode`): what a checkout exports is what
bundles pin, byte for byte; modules the trusted ones import come along; nothing else of the
checkout does; a link out of the checkout is refused."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mlops.bundle.codepin import pin
from mlops.bundle.imagecode import MANIFEST, export
from mlops.errors import UsageError

PIPELINE = """version: 1
model:
  name: m
  target: y
  trusted_types: [features.Ratio, mypkg.models.Shrunk, sklearn.svm.SVC]
stages:
  train: {uses: train}
"""


def _checkout(root: Path) -> Path:
    root.mkdir()
    (root / "pipeline.yaml").write_text(PIPELINE)
    (root / "features.py").write_text("import numpy\nfrom helpers import ratio\nclass Ratio: ...\n")
    (root / "helpers.py").write_text("from mypkg.util import one\ndef ratio(a, b): return a / b\n")
    (root / "unused.py").write_text("SECRET = 1\n")
    (root / "mypkg").mkdir()
    (root / "mypkg/__init__.py").write_text("")
    (root / "mypkg/models.py").write_text("class Shrunk: ...\n")
    (root / "mypkg/util.py").write_text("one = 1\n")
    (root / "mypkg/__pycache__").mkdir()
    (root / "mypkg/__pycache__/models.cpython-311.pyc").write_bytes(b"\0")
    (root / "tests").mkdir()
    (root / "tests/__init__.py").write_text("")
    (root / "data").mkdir()
    (root / "data/train.csv").write_text("y\n1\n")
    return root


def test_the_export_holds_what_bundles_pin_and_nothing_else(tmp_path: Path):
    src = _checkout(tmp_path / "checkout")
    dest = tmp_path / "opt-project"
    manifest = export(src, dest, "a" * 40)
    assert manifest["modules"] == ["features", "helpers", "mypkg"]  # helpers: imported
    found = sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file())
    assert found == [
        MANIFEST,
        "features.py",
        "helpers.py",
        "mypkg/__init__.py",
        "mypkg/models.py",
        "mypkg/util.py",
        "pipeline.yaml",
    ]
    assert json.loads((dest / MANIFEST).read_text())["commit"] == "a" * 40
    # the bundles' pins, computed on the checkout, are found unchanged in the export
    names = ["features.Ratio", "mypkg.models.Shrunk", "sklearn.svm.SVC"]
    assert pin(names, src)["modules"] == pin(names, dest)["modules"]
    assert pin(names, dest)["hash"] == pin(names, src)["hash"]


def test_the_module_entry_point_and_a_link_out_of_the_checkout(tmp_path: Path):
    src = _checkout(tmp_path / "checkout")
    outside = tmp_path / "elsewhere.py"
    outside.write_text("KEY = 'not yours'\n")
    (src / "helpers.py").unlink()
    (src / "helpers.py").symlink_to(outside)
    with pytest.raises(UsageError, match="links outside the checkout"):
        export(src, tmp_path / "dest")
    run = subprocess.run(
        [sys.executable, "-m", "mlops.bundle.imagecode", str(src), str(tmp_path / "d2")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 2 and "links outside the checkout" in run.stderr
    (src / "pipeline.yaml").write_text("version: 1\nmodel: [not, a, mapping]\n")
    run = subprocess.run(
        [sys.executable, "-m", "mlops.bundle.imagecode", str(src), str(tmp_path / "d3")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 2 and "pipeline.yaml" in run.stderr


def test_serve_outside_a_project_takes_types_and_code_from_the_project_dir(
    tmp_path: Path, monkeypatch
):
    from mlops.serve.launch import ServeOptions, serve_config

    exported = tmp_path / "opt-project"
    export(_checkout(tmp_path / "checkout"), exported)
    work = tmp_path / "work"  # a pod's working directory: no pipeline.yaml
    work.mkdir()
    from mlops.deploy.target import open_target

    target = str(open_target(tmp_path / "target", create=True).root)
    monkeypatch.setenv("MLOPS_PROJECT_DIR", str(exported))
    config, _ = serve_config(work, ServeOptions(), target=target)
    assert config.code_root == str(exported.resolve())
    assert "features.Ratio" in config.trusted_types
    monkeypatch.setenv("MLOPS_PROJECT_DIR", str(work))  # a directory without pipeline.yaml
    with pytest.raises(UsageError, match=r"holds no pipeline\.yaml"):
        serve_config(work, ServeOptions(), target=target)
    monkeypatch.delenv("MLOPS_PROJECT_DIR")
    config, _ = serve_config(work, ServeOptions(), target=target)
    assert config.code_root is None and config.trusted_types == []

"""pipeline.yaml / params.yaml checking: every error at once, with file, key path and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlops.config import load_project
from mlops.errors import ConfigError

GOOD = """\
version: 1
model: {name: demo, target: y}
stages:
  prep:
    cmd: python prep.py
    deps: [raw.csv]
    outs: [clean.csv]
  fit:
    cmd: python fit.py
    deps: [clean.csv]
    params: [train]
    outs: [model.pkl]
"""


def write(root: Path, pipeline: str, params: str = "train: {estimator: a.B}\n", files=("raw.csv",)):
    (root / "pipeline.yaml").write_text(pipeline)
    (root / "params.yaml").write_text(params)
    for f in files:
        (root / f).write_text("x\n")
    return root


def issues(root: Path) -> list:
    with pytest.raises(ConfigError) as info:
        load_project(root)
    return info.value.issues


def test_valid_pipeline_resolves_stages_in_order(tmp_path):
    project = load_project(write(tmp_path, GOOD))
    assert list(project.stages) == ["prep", "fit"]
    assert project.stages["fit"].deps == ["clean.csv"]


def test_unknown_key_wrong_type_and_missing_dependency_reported_together(tmp_path):
    bad = (
        GOOD.replace("    outs: [clean.csv]", "    outs: [clean.csv]\n    colour: blue")
        .replace("params: [train]", "params: [train]\n    frozen: sometimes")
        .replace("deps: [raw.csv]", "deps: [raw.csv, missing.csv]")
    )
    found = issues(write(tmp_path, bad))
    by_path = {i.path: i for i in found}
    assert "stages.prep.colour" in by_path
    assert "unknown key" in by_path["stages.prep.colour"].message
    assert "stages.fit.frozen" in by_path
    assert "bool" in by_path["stages.fit.frozen"].message
    missing = [i for i in found if "missing.csv" in i.message]
    assert len(missing) == 1 and missing[0].path == "stages.prep"
    assert by_path["stages.prep.colour"].line == 8
    assert by_path["stages.fit.frozen"].line == 13
    assert all(i.file == "pipeline.yaml" for i in found)


def test_error_message_names_file_line_and_key(tmp_path):
    write(tmp_path, GOOD.replace("target: y}", "target: y, colour: 1}"))
    with pytest.raises(ConfigError) as info:
        load_project(tmp_path)
    assert "pipeline.yaml:2: model.colour: unknown key" in info.value.message


def test_cycle_is_an_error(tmp_path):
    cyc = GOOD.replace("deps: [raw.csv]", "deps: [model.pkl]")
    found = issues(write(tmp_path, cyc))
    assert any("cycle" in i.message and "prep" in i.message and "fit" in i.message for i in found)


def test_duplicate_and_overlapping_outputs(tmp_path):
    dup = GOOD.replace("outs: [model.pkl]", "outs: [clean.csv]")
    found = issues(write(tmp_path, dup))
    assert any("also written by stage 'prep'" in i.message for i in found)


def test_output_outside_repository(tmp_path):
    out = GOOD.replace("outs: [model.pkl]", "outs: [../model.pkl]")
    found = issues(write(tmp_path, out))
    assert any("outside the repository" in i.message for i in found)


def test_unknown_after_reference_and_missing_param_key(tmp_path):
    bad = GOOD.replace("params: [train]", "params: [tune]\n    after: [nope]")
    found = issues(write(tmp_path, bad))
    assert any(
        i.path == "stages.fit.after[0]" and "unknown stage 'nope'" in i.message for i in found
    )
    assert any("params.yaml has no key 'tune'" in i.message for i in found)


def test_uses_and_cmd_are_exclusive_and_with_is_checked(tmp_path):
    bad = (
        GOOD
        + "  ev:\n    uses: evaluate\n    cmd: x\n  ing:\n    uses: ingest\n    with: {sorce: a}\n"
    )
    found = issues(write(tmp_path, bad))
    assert any(i.path == "stages.ev" and "exactly one of" in i.message for i in found)
    paths = {i.path for i in found}
    assert "stages.ing.with.sorce" in paths  # unknown key inside with:
    assert "stages.ing.with.source" in paths  # required key missing


def test_yaml_syntax_error_has_line(tmp_path):
    found = issues(write(tmp_path, GOOD + "  broken: [\n"))
    assert found[0].line is not None and "invalid YAML" in found[0].message


def test_duplicate_yaml_key_is_reported(tmp_path):
    found = issues(write(tmp_path, GOOD + "model: {name: other, target: y}\n"))
    assert any("duplicate key" in i.message and i.path == "model" for i in found)


def test_params_file_is_checked_too(tmp_path):
    found = issues(write(tmp_path, GOOD, params="train: {estimator: 3}\nsplit: {test_size: 2}\n"))
    files = {(i.file, i.path) for i in found}
    assert ("params.yaml", "split.test_size") in files
    assert ("params.yaml", "train.estimator") in files


def test_example_project_at_repository_root_is_valid():
    root = Path(__file__).resolve().parents[1]
    project = load_project(root)
    assert project.pipeline.model.name == "penguins-classifier"
    assert [s.kind for s in project.stages.values()] == [
        "ingest",
        "validate",
        "split",
        "train",
        "evaluate",
    ]

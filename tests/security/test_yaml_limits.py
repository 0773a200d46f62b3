"""Every YAML file mlops reads is size-limited and its alias expansion bounded (issue 13, item 4).

The refusals run in separate processes bounded by a timeout (a hang fails the test) and their own
peak memory is asserted: without the limits the alias bomb ran past 60 s and 2.8 GB, and a
100 MB params.yaml past 18 s and 1 GB.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mlops.config import limits
from mlops.errors import ConfigError
from mlops.registry.desired import parse_pin
from tests.security.run_cli import mlops


def billion_laughs() -> str:
    """Ten levels of ten aliases each: ~10^9 nodes once expanded, a few hundred bytes."""
    lines = ["lol0: &l0 [" + ", ".join(['"lol"'] * 10) + "]"]
    for i in range(1, 9):
        lines.append(f"lol{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 10) + "]")
    return "\n".join(lines) + "\n"


def test_the_bomb_is_small() -> None:
    assert len(billion_laughs().encode()) < 700


def test_alias_bomb_in_params_is_refused_by_check(project: Path) -> None:
    params = project / "params.yaml"
    params.write_text(params.read_text() + billion_laughs())
    res = mlops(["check"], project, limit=60)
    assert res.code == 2, res.text
    assert "params.yaml" in res.err and "alias bomb" in res.err
    assert "Write the repeated values out" in res.err  # what to do
    assert res.peak_mb < 300, res.peak_mb


def test_100mb_params_is_refused_without_reading_it(project: Path) -> None:
    params = project / "params.yaml"
    with params.open("a") as fh:
        fh.write("big:\n")
        line = "  - " + "x" * 92 + "\n"
        fh.write(line * (100 * 1024 * 1024 // len(line)))
    res = mlops(["check"], project, limit=60)
    assert res.code == 2, res.text
    assert "params.yaml: is 100.0 MiB" in res.err
    assert limits.MAX_BYTES_ENV in res.err
    assert res.peak_mb < 300, res.peak_mb


def test_the_size_limit_can_be_raised(project: Path) -> None:
    small = {limits.MAX_BYTES_ENV: "64"}
    res = mlops(["check"], project, env=small, limit=60)
    assert res.code == 2 and "at most 64 bytes" in res.err, res.text
    assert mlops(["check"], project, env={limits.MAX_BYTES_ENV: "100000"}).code == 0


@pytest.mark.slow
def test_run_refuses_a_bomb_before_dvc_reads_params(trained: Path) -> None:
    """`mlops run` starts DVC in-process, and DVC parses params.yaml itself: the limits run
    first, so the run stops with exit 2 and DVC's lock and outputs are untouched."""
    lock = (trained / "dvc.lock").read_bytes()
    params = trained / "params.yaml"
    params.write_text(params.read_text() + billion_laughs())
    res = mlops(["run", "--force"], trained, limit=60)
    assert res.code == 2, res.text
    assert "params.yaml" in res.err and "alias bomb" in res.err
    assert res.peak_mb < 300, res.peak_mb
    assert (trained / "dvc.lock").read_bytes() == lock


def test_bomb_in_dvc_lock_is_refused_before_dvc_parses_it(project: Path) -> None:
    (project / "dvc.lock").write_text("schema: '2.0'\nstages: {}\n" + billion_laughs())
    res = mlops(["check"], project, limit=60)
    assert res.code == 2, res.text
    assert "dvc.lock" in res.err and "alias bomb" in res.err


def test_bomb_in_pipeline_yaml(project: Path) -> None:
    pipeline = project / "pipeline.yaml"
    pipeline.write_text(pipeline.read_text() + billion_laughs())
    res = mlops(["check"], project, limit=60)
    assert res.code == 2, res.text
    assert "pipeline.yaml" in res.err and "alias bomb" in res.err


def test_a_device_as_params_is_refused(project: Path) -> None:
    params = project / "params.yaml"
    params.unlink()
    os.symlink("/dev/zero", params)
    res = mlops(["check"], project, limit=60)
    assert res.code == 2, res.text
    assert "params.yaml: is not a regular file" in res.err


def test_recursive_alias_is_refused() -> None:
    with pytest.raises(ConfigError) as info:
        limits.safe_load("a: &a [1, *a]\n", "params.yaml")
    assert "an anchor is used inside itself" in info.value.message


def test_deep_nesting_is_refused() -> None:
    text = "a: " + "[" * (limits.MAX_DEPTH + 5) + "]" * (limits.MAX_DEPTH + 5) + "\n"
    with pytest.raises(ConfigError) as info:
        limits.safe_load(text, "schema.yaml")
    assert "nests deeper than" in info.value.message
    with pytest.raises(ConfigError) as info:  # libyaml's own limit, 1,000, ends as exit 2 too
        limits.safe_load("a: " + "[" * 5000 + "]" * 5000, "schema.yaml")
    assert "invalid YAML" in info.value.message


def test_ordinary_aliases_still_work() -> None:
    text = (
        "base: &base {C: 1.0, max_iter: 100}\n"
        "train: {<<: *base, C: 0.5}\n"
        "tune: {grid: [*base, *base]}\n"
    )
    data = limits.safe_load(text, "params.yaml")
    assert data["train"] == {"C": 0.5, "max_iter": 100}
    assert data["tune"]["grid"][1]["max_iter"] == 100


def test_bomb_in_a_deploy_pin_is_refused() -> None:
    text = "model: m\nversion: v1.0.0\n" + billion_laughs()
    with pytest.raises(ConfigError) as info:
        parse_pin(text, "deploy/production.yaml")
    assert "deploy/production.yaml" in str(info.value.issues[0])

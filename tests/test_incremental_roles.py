"""The incremental (partial_fit) train stage treats identifier/time columns and serving ranges
as the in-memory path does: roles left out with a line saying so, ranges from the contract."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from palmerpenguins import load_penguins

from mlops.config import load_project
from mlops.data.profile import profile_frame
from mlops.data.roles import infer_roles
from mlops.stages import train
from mlops.stages.incremental import LocalChunks, roles_over_chunks


def _penguins(root: Path) -> pd.DataFrame:
    df = pd.read_csv(root / "data/source/penguins.csv").dropna().reset_index(drop=True)
    df["penguin_id"] = [f"P{i:05d}" for i in range(len(df))]
    df["seen"] = pd.date_range("2020-01-01", periods=len(df), freq="D").strftime("%Y-%m-%d")
    return df


def test_incremental_train_stage_leaves_out_roles_and_serves_the_contract_range(project: Path):
    light = _penguins(project)
    light = light[light.body_mass_g < 4000]  # the training rows never saw a heavy penguin
    (project / "data/split").mkdir(parents=True)
    light.to_csv(project / "data/split/train.csv", index=False)
    pipeline = (project / "pipeline.yaml").read_text()
    (project / "pipeline.yaml").write_text(
        pipeline.replace(
            "      exclude: [year]\n",
            "      exclude: [year]\n      input: data/split/train.csv\n"
            "      incremental: {epochs: 3, sample_rows: 1000}\n",
        )
    )
    params = (project / "params.yaml").read_text()
    head = params.split("train:")[0]
    (project / "params.yaml").write_text(
        head + "train:\n  estimator: sklearn.linear_model.SGDClassifier\n  random_state: 0\n"
    )
    proj = load_project(project)
    lines = list(train.run(proj, proj.stages["train"]))

    assert "train: penguin_id: identifier column (a different value on every row); " in (
        "\n".join(lines)
    )
    assert any(
        line.startswith("train: seen: time column (values parse as dates)") for line in lines
    )
    assert any("partial_fit over 1 chunks x 3 epochs" in line for line in lines)
    out = project / proj.pipeline.model.fit_path
    fit = json.loads((out / "fit.json").read_text())
    assert "penguin_id" not in fit["features"] and "seen" not in fit["features"]
    assert "year" not in fit["features"] and "body_mass_g" in fit["features"]
    assert sorted(fit["excluded_columns"]) == ["penguin_id", "seen"]
    assert fit["incremental"]["epochs"] == 3
    reference = json.loads((out / "reference.json").read_text())
    assert "penguin_id" not in reference["columns"] and "seen" not in reference["columns"]
    schema = json.loads((out / "schema.json").read_text())
    mass = next(f for f in schema["features"] if f["name"] == "body_mass_g")
    # served range: the contract's (data/schema.yaml covers every penguin); training range kept
    assert mass["range_source"] == "data contract"
    assert (mass["min"], mass["max"]) == (2700.0, 6300.0)
    assert mass["train_max"] < 4000

    # kept on purpose: `keep:` puts a column back, and no line claims it was left out
    (project / "pipeline.yaml").write_text(
        (project / "pipeline.yaml")
        .read_text()
        .replace("      exclude: [year]\n", "      exclude: [year]\n      keep: [seen]\n")
    )
    proj = load_project(project)
    lines = list(train.run(proj, proj.stages["train"]))
    assert not any(line.startswith("train: seen:") for line in lines)
    fit = json.loads((out / "fit.json").read_text())
    assert "seen" in fit["features"] and list(fit["excluded_columns"]) == ["penguin_id"]


def test_without_a_contract_the_incremental_range_is_the_training_range(project: Path):
    (project / "data/split").mkdir(parents=True)
    light = _penguins(project)
    light[light.body_mass_g < 4000].to_csv(project / "data/split/train.csv", index=False)
    pipeline = (project / "pipeline.yaml").read_text()
    start, end = pipeline.index("  validate:\n"), pipeline.index("  split:\n")
    (project / "pipeline.yaml").write_text(
        pipeline[:start]
        + pipeline[end:].replace(
            "      exclude: [year]\n",
            "      exclude: [year]\n      input: data/split/train.csv\n      incremental: {}\n",
        )
    )
    params = (project / "params.yaml").read_text()
    (project / "params.yaml").write_text(
        params.split("train:")[0] + "train:\n  estimator: sklearn.linear_model.SGDClassifier\n"
    )
    proj = load_project(project)
    list(train.run(proj, proj.stages["train"]))
    schema = json.loads((project / proj.pipeline.model.fit_path / "schema.json").read_text())
    mass = next(f for f in schema["features"] if f["name"] == "body_mass_g")
    assert mass["range_source"] == "training data" and mass["max"] < 4000


def test_roles_over_chunks_need_every_chunk_and_uniqueness_over_all(tmp_path: Path):
    df = load_penguins().dropna().reset_index(drop=True)
    df["penguin_id"] = [f"P{i:05d}" for i in range(len(df))]
    df["seen"] = pd.date_range("2020-01-01", periods=len(df), freq="D").strftime("%Y-%m-%d")
    df["tag"] = [f"ring-{i % 100:02d}-b" for i in range(len(df))]  # unique in 100 rows, not all
    parts = tmp_path / "train"
    parts.mkdir()

    def write(frame: pd.DataFrame) -> None:  # one file per 60 rows: chunks of 20-100 rows
        for k, start in enumerate(range(0, len(frame), 60)):
            frame.iloc[start : start + 60].to_csv(parts / f"part-{k:03d}.csv", index=False)

    write(df)
    chunks = LocalChunks(parts)
    sizes = chunks.map(lambda chunk, i: len(chunk))
    assert len(sizes) > 3 and max(sizes) < 100
    per_chunk = chunks.map(lambda chunk, i: infer_roles(chunk, target="species").get("tag"))
    assert all(
        r and r.role == "identifier" for r, n in zip(per_chunk, sizes, strict=True) if n >= 20
    )
    roles = roles_over_chunks(chunks, profile_frame(df), "species")
    assert sorted(roles) == ["penguin_id", "seen"]  # tag repeats across chunks: a feature
    assert roles["seen"].role == "time" and roles["penguin_id"].role == "identifier"
    # a column one chunk does not flag is no identifier of the data
    df.loc[len(df) // 2, "penguin_id"] = df.loc[len(df) // 2 + 1, "penguin_id"]
    write(df)
    assert "penguin_id" not in roles_over_chunks(chunks, profile_frame(df), "species")

"""The model card: written by every run that evaluates a model, linked by the report and lineage."""

from __future__ import annotations

import yaml

from mlops.config import load_project
from mlops.pipeline.records import RunStore
from mlops.reports.card import CARD_HTML, CARD_MD, SECTIONS, write_card
from tests.helpers import commit_all, git


def test_the_card_holds_every_section_and_is_linked(trained, cli) -> None:
    # the run that trained the project wrote it, and it was committed with the results
    assert (trained / CARD_MD).is_file()
    assert git(trained, "ls-files", CARD_MD) == CARD_MD

    path = trained / "pipeline.yaml"
    data = yaml.safe_load(path.read_text())
    data["model"]["card"] = {
        "intended_use": "Field researchers sorting penguin measurements by species.",
        "limitations": ["Three species only", "Palmer Archipelago birds, 2007-2009"],
        "owners": ["Penguin team <penguins@example.com>"],
        "ethical_considerations": "No personal data; sex is a sensitive column.",
    }
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    assert cli(["check"], cwd=trained).exit_code == 0
    record = RunStore(trained).get("latest")
    write_card(load_project(trained), record)
    md = (trained / CARD_MD).read_text()
    for title in SECTIONS:
        assert f"\n## {title}\n" in md, title
    assert "Field researchers" in md and "Three species only" in md
    assert "penguins@example.com" in md and "sex is a sensitive column" in md
    assert "| accuracy |" in md  # metrics
    assert "| island" in md or "island=" in md  # slices of the example project
    assert "| accuracy | min |" in md  # gates
    assert "`data/source/penguins.csv`" in md  # data
    assert "param `train.C`" in md  # lineage
    assert "Not stated" not in md.split("## Data")[0]  # every people's section filled
    page = (trained / CARD_HTML).read_text()
    assert all(f"<h2>{t}</h2>" in page for t in SECTIONS) and "<table>" in page
    first = md
    write_card(load_project(trained), record)
    assert (trained / CARD_MD).read_text() == first  # same inputs, same bytes

    report = cli(["report"], cwd=trained)
    assert report.exit_code == 0, report.output
    assert f"Model card: `{CARD_MD}`" in report.output

    commit_all(trained, "Model card")
    assert cli(["register"], cwd=trained).exit_code == 0
    lin = cli(["lineage", "penguins-classifier@v0.0.1"], cwd=trained)
    assert lin.exit_code == 0, lin.output
    assert f"model card: {CARD_MD} at" in lin.output


def test_a_card_without_words_says_what_to_add(trained) -> None:
    record = RunStore(trained).get("latest")
    write_card(load_project(trained), record)
    md = (trained / CARD_MD).read_text()
    assert md.count("add it under `model.card:`") == 4  # intended use, limitations, owners, ethics

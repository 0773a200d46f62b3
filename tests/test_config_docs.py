"""Every key documented: docs/config.md is generated from the config models and up to date,
`mlops schema` is a JSON Schema editors can use, and `mlops check` points to the right section."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml
from jsonschema import Draft7Validator
from pydantic import BaseModel

from mlops.config import models
from mlops.config.reference import SECTIONS, json_schema, render, undocumented
from mlops.errors import ExitCode
from tests.helpers import replace_in, replaced

ROOT = Path(__file__).resolve().parents[1]


def test_config_reference_is_up_to_date():
    current = (ROOT / "docs" / "config.md").read_text()
    assert current == render(), (
        "docs/config.md is stale: run `python -m mlops.config.reference > docs/config.md`"
    )


def test_every_key_has_a_description():
    assert undocumented() == [], "describe these keys in mlops/config/reference.py"


def test_every_config_model_has_a_section():
    documented = {model for _, model, _ in SECTIONS}
    defined = {
        obj
        for obj in vars(models).values()
        if isinstance(obj, type)
        and issubclass(obj, BaseModel)
        and obj.__module__ == models.__name__
        and obj is not models.Strict
    }
    assert defined - documented == set(), "add a section to SECTIONS in mlops/config/reference.py"


def schema_validator(cli) -> Draft7Validator:
    result = cli(["schema"])
    assert result.exit_code == 0
    schema = json.loads(result.stdout)
    Draft7Validator.check_schema(schema)
    assert schema == json_schema()
    return Draft7Validator(schema)


def test_schema_accepts_the_template_and_catches_typos(cli):
    validator = schema_validator(cli)
    template = yaml.safe_load((ROOT / "mlops/templates/pipeline.yaml").read_text())
    assert list(validator.iter_errors(template)) == []
    bad = json.loads(json.dumps(template))
    bad["stages"]["ingest"]["with"]["sauce"] = "x"  # a typo inside a built-in's `with:`
    bad["stages"]["evaluate"]["gates"]["accuracy"]["mn"] = 0.9
    bad["modle"] = {}
    found = {(".".join(map(str, e.absolute_path)), e.message) for e in validator.iter_errors(bad)}
    assert (
        "stages.ingest.with",
        "Additional properties are not allowed ('sauce' was unexpected)",
    ) in found
    assert (
        "stages.evaluate.gates.accuracy",
        "Additional properties are not allowed ('mn' was unexpected)",
    ) in found
    assert any("'modle'" in message for _, message in found)


def test_schema_describes_keys_for_hover(cli):
    schema = schema_validator(cli).schema
    span = schema["$defs"]["SpanSpec"]["properties"]
    assert "whole day" in span["to"]["description"]
    assert "docs/config.md#spanspec" in schema["$defs"]["SpanSpec"]["description"]


def test_schema_writes_a_file(tmp_path: Path, cli):
    out = tmp_path / "pipeline.schema.json"
    assert cli(["schema", "-o", str(out)]).exit_code == 0
    assert json.loads(out.read_text()) == json_schema()


def test_check_points_unknown_keys_to_their_section(project: Path, cli):
    pipe = project / "pipeline.yaml"
    text = replaced(pipe, "  task: classification", "  taks: classification")
    text = text.replace(
        "      output: data/raw/penguins.csv\n",
        "      output: data/raw/penguins.csv\n      sapn: 1\n",
    )
    pipe.write_text(text)
    params = project / "params.yaml"
    replace_in(params, "  seed: 42", "  seeed: 42")
    result = cli(["check"], cwd=project)
    assert result.exit_code == ExitCode.USAGE, result.output
    out = result.output
    assert "model.taks: unknown key; allowed here: name, target, task" in out
    assert "(see docs/config.md#modelspec)" in out
    assert (
        "stages.ingest.with.sapn: unknown key; allowed here: source, output, span, columns" in out
    )
    assert "docs/config.md#ingestwith" in out
    assert "split.seeed: unknown key; allowed here: test_size, seed, stratify" in out
    assert "docs/config.md#splitparams" in out
    assert "mlops check --help" not in out
    reference = (ROOT / "docs/config.md").read_text()
    for anchor in re.findall(r"docs/config\.md#(\w+)", out):
        assert f'<a id="{anchor}"></a>' in reference


def test_howto_covers_what_the_issue_asks():
    howto = (ROOT / "docs/howto.md").read_text()
    for heading in (
        "## Start from your own data",
        "## Gates of a new project",
        "## A regression",
        "## Time spans",
        "## Custom `cmd:` stages",
        "## Editor completion",
    ):
        assert heading in howto
    assert "DUMMY_MARGIN" in howto and "format:" in howto

"""Dates as dates: a span takes YAML dates and datetimes, parses its column (optionally with a
`format:`) and compares as time; DVC tracks such a span without choking on the dates."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml

from mlops.config.models import IngestWith, SpanSpec
from mlops.errors import UsageError
from mlops.stages.span import span_mask
from tests.helpers import commit_all, replace_in


def span(text: str) -> SpanSpec:
    return SpanSpec.model_validate(yaml.safe_load(text))


def kept(values: list, text: str) -> list:
    col = pd.Series(values)
    return col[span_mask(col, span(text))].tolist()


def test_yaml_dates_and_datetimes_are_accepted():
    s = span("{column: d, from: 2012-01-01, to: 2012-06-30 18:00:00}")
    assert s.is_time and str(s.from_) == "2012-01-01" and s.to.hour == 18
    assert (
        IngestWith.model_validate(
            {"source": "x.csv", "span": {"column": "d", "from": s.from_, "format": "%d/%m/%Y"}}
        ).span.format
        == "%d/%m/%Y"
    )


def test_iso_text_column_against_yaml_dates():
    values = ["2011-12-31", "2012-01-01", "2012-06-30", "2012-07-01", None]
    assert kept(values, "{column: d, from: 2012-01-01, to: 2012-06-30}") == values[1:3]


def test_non_iso_dates_with_a_format():
    # as text, '02/01/2012' > '01/03/2012' is wrong in time: only a parsed column filters right
    values = ["31/12/2011", "02/01/2012", "01/03/2012", "15/07/2012"]
    got = kept(values, "{column: d, from: 2012-01-01, to: 2012-03-31, format: '%d/%m/%Y'}")
    assert got == ["02/01/2012", "01/03/2012"]


def test_quoted_bounds_on_date_text_compare_as_time():
    values = ["2012-1-5", "2012-01-10", "2012-2-1"]
    assert kept(values, "{column: d, from: '2012-01-06', to: '2012-01-31'}") == ["2012-01-10"]


def test_a_date_to_includes_that_whole_day():
    col = pd.Series(pd.to_datetime(["2012-06-30 00:00", "2012-06-30 23:59", "2012-07-01 00:00"]))
    assert col[span_mask(col, span("{column: t, to: 2012-06-30}"))].size == 2
    assert col[span_mask(col, span("{column: t, to: 2012-06-30 12:00:00}"))].size == 1


def test_time_zone_aware_column_with_naive_bounds():
    col = pd.Series(pd.to_datetime(["2012-01-01T10:00:00+01:00", "2012-01-03T10:00:00+01:00"]))
    assert col[span_mask(col, span("{column: t, from: 2012-01-02}"))].size == 1


def test_numbers_compare_as_numbers():
    assert kept([2006, 2007, 2008, 2009], "{column: year, from: 2007, to: 2008}") == [2007, 2008]


@pytest.mark.parametrize(
    ("values", "text", "message"),
    [
        (["2012-01-01", "yesterday", "soon"], "{column: d, from: 2012-01-01}", "2 of 3 values"),
        (["01/02/2012"], "{column: d, from: 2012-01-01, format: '%Y-%m-%d'}", "format"),
        ([20120101, 20120102], "{column: d, from: 2012-01-01}", "holds numbers"),
        ([2007, 2008], "{column: year, from: '2007'}", "give numbers"),
    ],
)
def test_values_that_are_not_dates_stop_the_stage(values, text, message):
    with pytest.raises(UsageError, match=message):
        span_mask(pd.Series(values), span(text))


@pytest.mark.slow
def test_a_natural_yaml_date_runs_and_dvc_tracks_it(project: Path, cli):
    """The issue's case: `span: {column: date, from: 2012-01-01}` unquoted, through DVC."""
    src = project / "data/source/penguins.csv"
    frame = pd.read_csv(src)
    frame["date"] = pd.date_range("2011-06-01", periods=len(frame), freq="D").strftime("%d/%m/%Y")
    frame.to_csv(src, index=False)
    pipe = project / "pipeline.yaml"
    replace_in(
        pipe,
        "      output: data/raw/penguins.csv\n",
        "      output: data/raw/penguins.csv\n"
        "      span: {column: date, from: 2012-01-01, to: 2012-03-31, format: '%d/%m/%Y'}\n",
        1,
    )
    commit_all(project, "span")
    assert cli(["check"], cwd=project).exit_code == 0
    result = cli(["run", "ingest"], cwd=project)
    assert result.exit_code == 0, result.output
    raw = pd.read_csv(project / "data/raw/penguins.csv")
    assert len(raw) == 91  # January to March 2012, one row a day
    assert raw["date"].iloc[0] == "01/01/2012" and raw["date"].iloc[-1] == "31/03/2012"
    dvc_yaml = (project / "dvc.yaml").read_text()
    assert "--with span.from=2012-01-01 --with span.to=2012-03-31" in dvc_yaml
    assert cli(["status"], cwd=project).exit_code == 0
    # moving the span reruns ingest
    replace_in(pipe, "to: 2012-03-31", "to: 2012-01-31")
    result = cli(["run", "ingest"], cwd=project)
    assert result.exit_code == 0, result.output
    assert len(pd.read_csv(project / "data/raw/penguins.csv")) == 31

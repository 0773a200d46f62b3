"""Drift against a stored reference profile: real spans and groups of the penguins data, the
+0.2 standard-deviation shift, exactness against scipy, streaming, and training-serving skew."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from palmerpenguins import load_penguins
from scipy import stats

from mlops.config.models import DriftSpec
from mlops.data.drift import compare, skew
from mlops.data.profile import profile_frame
from mlops.data.validation import Checks, validate_table


@pytest.fixture(scope="module")
def penguins() -> pd.DataFrame:
    return load_penguins()


@pytest.fixture(scope="module")
def twenty() -> tuple[pd.DataFrame, pd.DataFrame]:
    """20 normal columns, 20,000 rows each side; column f3 moved by +0.2 standard deviation."""
    rng = np.random.default_rng(7)
    ref = pd.DataFrame({f"f{i}": rng.normal(size=20_000) for i in range(20)})
    cur = pd.DataFrame({f"f{i}": rng.normal(size=20_000) for i in range(20)})
    cur["f3"] += 0.2
    return ref, cur


def test_random_halves_show_no_drift(penguins: pd.DataFrame):
    for seed in (1, 2, 3):
        a = penguins.sample(frac=0.5, random_state=seed)
        b = penguins.drop(a.index)
        report = compare(b, profile_frame(a))
        assert not report.dataset_drift, report.to_dict()
        assert report.share < 0.5


def test_different_islands_drift_and_the_report_names_what_moved(penguins: pd.DataFrame):
    biscoe = profile_frame(penguins[penguins.island == "Biscoe"])
    report = compare(penguins[penguins.island == "Dream"], biscoe)
    assert report.dataset_drift
    # Biscoe is mostly big Gentoo penguins, Dream has none: species and size moved most
    most = [c.column for c in report.ranked()[:4]]
    assert "species" in most and "flipper_length_mm" in most
    assert report.to_dict()["most_moved"][:4] == most
    methods = {c.column: c.method for c in report.columns}
    assert methods["flipper_length_mm"] == "ks" and methods["species"] == "chisquare"
    assert methods["sex"] == "ztest"  # two values


def test_different_years_flag_the_columns_that_moved(penguins: pd.DataFrame):
    report = compare(
        penguins[penguins.year == 2009], profile_frame(penguins[penguins.year == 2007])
    )
    assert "year" in report.drifted
    assert "island" not in report.drifted and "species" not in report.drifted


def test_small_shift_of_one_column_among_twenty(twenty):
    ref, cur = twenty
    reference = profile_frame(ref)
    report = compare(cur, reference)
    assert report.drifted == ["f3"]
    assert report.column("f3").method == "wasserstein"
    assert 0.15 < report.column("f3").score < 0.25
    assert report.ranked()[0].column == "f3"
    # 20 quantile bins are too coarse for this shift: PSI and Jensen-Shannon miss it
    assert "f3" not in compare(cur, reference, DriftSpec(method="psi")).drifted
    assert "f3" not in compare(cur, reference, DriftSpec(method="jensenshannon")).drifted


@pytest.mark.parametrize("correction", ["holm", "bonferroni", "bh"])
def test_corrections_remove_a_false_alarm(twenty, correction):
    ref, cur = twenty
    reference = profile_frame(ref)
    plain = compare(cur, reference, DriftSpec(method="ks", correction="none"))
    corrected = compare(cur, reference, DriftSpec(method="ks", correction=correction))
    assert "f3" in plain.drifted and len(plain.drifted) > 1  # one false alarm at p < 0.05
    assert corrected.drifted == ["f3"]
    assert all(c.p_adjusted is not None and c.p_adjusted >= c.score for c in corrected.columns)
    assert corrected.to_dict()["correction"] == correction


def test_thresholds_per_column_and_share(twenty):
    ref, cur = twenty
    reference = profile_frame(ref)
    loose = compare(cur, reference, DriftSpec(columns={"f3": 0.5}))
    assert loose.drifted == []
    strict = compare(cur, reference, DriftSpec(share=0.05))
    assert strict.dataset_drift and strict.share == pytest.approx(0.05)


def test_statistics_match_scipy_on_exact_references():
    rng = np.random.default_rng(11)
    ref = pd.DataFrame(
        {"x": rng.integers(0, 200, 800).astype(float), "c": rng.choice(list("abcd"), 800)}
    )
    cur = pd.DataFrame(
        {"x": rng.integers(10, 220, 600).astype(float), "c": rng.choice(list("abcde"), 600)}
    )
    reference = profile_frame(ref)
    ks = compare(cur, reference).column("x")
    assert ks.method == "ks"
    assert ks.score == pytest.approx(stats.ks_2samp(ref.x, cur.x).pvalue, rel=1e-6)
    w = compare(cur, reference, DriftSpec(method="wasserstein")).column("x")
    expected = stats.wasserstein_distance(ref.x, cur.x) / np.std(ref.x)
    assert w.score == pytest.approx(expected, rel=1e-6)
    chi = compare(cur, reference).column("c")
    # "e", never seen in the reference, is one more column of the 2 x k table (a fifth of rows)
    assert chi.method == "chisquare" and chi.drifted
    assert chi.stats["unseen"] == ["e"]
    table = np.array([[(ref.c == k).sum() for k in "abcde"], [(cur.c == k).sum() for k in "abcde"]])
    assert chi.score == pytest.approx(stats.chi2_contingency(table, correction=False)[1])


def test_one_value_unseen_in_the_reference_is_a_finding_not_a_breach():
    rng = np.random.default_rng(3)
    ref = pd.DataFrame({"c": rng.choice(list("abc"), 184)})
    cur = pd.DataFrame({"c": [*rng.choice(list("abc"), 299), "d"]})
    col = compare(cur, profile_frame(ref)).column("c")
    assert col.method == "chisquare" and not col.drifted and col.score > 0.05
    assert col.stats["unseen"] == ["d"]
    assert col.stats["unseen_share"] == pytest.approx(1 / 300, abs=1e-6)


def test_profile_against_profile_and_streamed_file_agree_with_frame(tmp_path: Path, twenty):
    ref, cur = twenty
    reference = profile_frame(ref)
    from_frame = compare(cur, reference)
    from_profile = compare(profile_frame(cur), reference)
    path = tmp_path / "cur.csv"
    cur.to_csv(path, index=False)
    streamed = validate_table(path, None, Checks(reference=reference), chunk_bytes=1 << 20)
    assert streamed.chunks > 1
    assert from_profile.drifted == from_frame.drifted == streamed.reference.drifted == ["f3"]
    for name in ("f3", "f7"):
        a = from_frame.column(name).score
        assert from_profile.column(name).score == pytest.approx(a, abs=0.01)
        assert streamed.reference.column(name).score == pytest.approx(a, abs=0.01)


def test_training_serving_skew(penguins: pd.DataFrame):
    reference = profile_frame(penguins)
    reference["target"] = "species"
    batch = penguins.drop(columns=["species", "sex"]).head(60).copy()
    batch.loc[:9, "island"] = "Atlantis"
    batch.loc[:4, "body_mass_g"] = 9000.0
    report = skew(batch.to_dict("records"), reference)
    assert report.missing_columns == ["sex"]  # a feature the model needs; the target is not
    assert report.column("island").stats["unseen_share"] == pytest.approx(10 / 60, abs=1e-6)
    assert report.column("body_mass_g").stats["out_of_range_share"] == pytest.approx(
        5 / 60, abs=1e-6
    )
    assert "island" in report.drifted
    assert {c.column for c in report.columns} == set(penguins.columns) - {"species", "sex"}

"""Drift of live numeric columns from counts (`mlops.monitor.counted`): the same figures as
sorting every value, whatever the chunks (segments) the rows came in."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pandas as pd

from mlops.config.models import MonitoringSpec
from mlops.data.drift import compare
from mlops.monitor import counted
from mlops.monitor.checks import LiveModel, analyse
from mlops.monitor.segments import read_segments
from mlops.monitor.window import Window
from tests.monitor_helpers import group
from tests.segment_helpers import ship_rows


def test_exact_sums_are_exact_for_awkward_values():
    rng = np.random.default_rng(0)
    cases = [
        rng.normal(40, 5, 3000).round(2),
        rng.normal(0, 1, 500),
        np.array([1e-300, 1e300, -3.5, 5e-324, 0.0, -0.0, -1e300]),  # many exponents
        rng.gamma(2, 0.2, 777) * 1e-12,
    ]
    for x in cases:
        total, total_sq = counted._exact_sums(x)
        assert Fraction(total, 1 << counted.SUM_SCALE) == sum(Fraction(v) for v in x.tolist())
        assert Fraction(total_sq, 1 << (2 * counted.SUM_SCALE)) == sum(
            Fraction(v) ** 2 for v in x.tolist()
        )


def test_the_figures_do_not_depend_on_how_rows_are_split():
    rng = np.random.default_rng(1)
    x = rng.normal(4200, 800, 20_000).round(0)
    x[::97] = np.nan
    x[5] = np.inf
    ref_col = {
        "sketch": {"values": sorted(set(rng.normal(4200, 800, 300).round(0).tolist()))},
        "histogram": {"edges": [2000.0, 3500.0, 4200.0, 5000.0, 6500.0]},
    }
    points = counted.points_for(ref_col)
    splits = [[x], np.array_split(x, 7), np.array_split(x[::-1], 3)]
    got = []
    for parts in splits:
        c = counted.Counted(counted.merge([counted.summarise(p, points) for p in parts], points))
        got.append((c.n, c.mean, c.std, c.summary.le.tolist(), c.summary.missing))
    assert got[0] == got[1] == got[2]  # bit for bit
    finite = np.sort(x[np.isfinite(x)])
    assert got[0][0] == len(finite) and got[0][4] == int(np.isnan(x).sum())
    assert got[0][3] == np.searchsorted(finite, points, side="right").tolist()
    assert got[0][1] == float(sum(Fraction(v) for v in finite.tolist()) / len(finite))
    assert abs(got[0][2] - finite.std(ddof=1)) <= 1e-9 * finite.std(ddof=1)


def test_drift_from_shipped_segments_equals_drift_of_the_sorted_rows(tmp_path: Path, bundle: Path):
    rows, labels = group(None, n=12_000, seed=7)  # > KS_EXACT_N: the counted ks path
    store = tmp_path / "store"
    ship_rows(bundle, tmp_path / "sa", str(store), "a", rows[:5000], labels[:5000], batch=500)
    ship_rows(bundle, tmp_path / "sb", str(store), "b", rows[5000:], labels[5000:], batch=500)
    columns = read_segments(str(store))
    assert columns.predictions.num_rows == 12_000
    live = LiveModel.read(bundle, "v0.0.1")
    spec = MonitoringSpec()
    report = analyse(columns, live, spec, Window(None, 2e9, "all"), env="test")
    assert report.drift is not None
    features = [c.column for c in report.drift.columns]
    numeric = [c for c in report.drift.columns if c.kind == "numeric"]
    assert len(numeric) == 4
    for c in numeric:  # every numeric feature went through the counts
        assert counted.plan(live.reference["columns"][c.column], "auto", c.current_rows)
    # the independent path: the same rows as a frame, each column sorted by `compare`
    frame = pd.DataFrame(rows)
    expected = {c.column: c for c in compare(frame, live.reference, spec.drift).columns}
    for c in report.drift.columns:
        e = expected[c.column]
        assert (c.method, c.score, c.p_value, c.current_rows) == (
            e.method,
            e.score,
            e.p_value,
            e.current_rows,
        )
        for key in ("ks_statistic", "histogram", "out_of_range_share", "categories"):
            assert c.stats.get(key) == e.stats.get(key), (c.column, key)
        if c.kind == "numeric":  # exact sums against numpy's: equal to ~1e-12
            for key in ("current_mean", "current_std"):
                assert abs(c.stats[key] - e.stats[key]) <= 1e-9 * abs(e.stats[key])
    assert features == [f for f in live.features if f in live.reference["columns"]]

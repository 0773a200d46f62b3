"""False-alarm rate and detection rate of the drift alarms, side by side with Evidently's defaults.

    .venv/bin/python benchmarks/drift_calibration.py                 # mlops only, 300 samples
    python3 -m venv /tmp/evenv && /tmp/evenv/bin/pip install 'evidently==0.7.*' 'pandas<3' pyarrow
    .venv/bin/python benchmarks/drift_calibration.py --evidently /tmp/evenv/bin/python
    .venv/bin/python benchmarks/drift_calibration.py --samples 40 --sizes 100   # a quick look
    # what docs/benchmarks.md shows: every chunk kept in a directory, only missing trials run
    nice -n 15 .venv/bin/python benchmarks/drift_calibration.py --samples 300 \
        --evidently /tmp/evenv/bin/python --cell-dir benchmarks/drift_calibration_cells
    .venv/bin/python benchmarks/drift_calibration.py --table benchmarks/drift_calibration_cells

Sample (trial) `i` of a cell is always the same sample, whatever else runs: one random stream
per cell (seed, n, traffic, dataset), each trial's draws taken from it in order; a run that
starts at trial 200 draws and discards trials 0-199 first. So a cell grows by adding trials:
`--samples N` with `--cell-dir DIR` runs only the trials of 0..N-1 missing in DIR, one tool
(`--tools`) and one chunk (`--chunk` trials) per file, written atomically; two files covering the
same trial must agree. The table gives each false-alarm rate's one-sided 95% upper bound
(Clopper-Pearson).

Evidently needs pandas < 3, so it lives in its own virtual environment (above, under /tmp) and
runs in a subprocess of that environment's python (`--evidently`); the samples go to it as
Parquet files, so both tools judge the same rows. Neither `scripts/test.sh` nor CI installs
Evidently: only this benchmark uses it.

Two real datasets shipped offline, each with a real shift:
- penguins (palmerpenguins): reference period 2007-2008, shifted traffic from 2009;
- Seattle weather (vega_datasets, local copy): reference period 2012-2013, shifted traffic 2015.

A model (logistic regression, the train stage's pipeline) is fitted on 60% of the reference
period's rows; the other 40% are the held-out rows. Every trial (seeded) draws, from the
held-out rows, a training-profile sample (as many rows as the training split), an evaluation
sample (the prediction reference: the model's predictions on it) and `n` rows of live traffic;
for the detection rate the live rows come from the shifted period instead. Draws are a smoothed
bootstrap (rows resampled, numbers jittered by a quarter of their standard deviation and rounded
to the data's precision) so that every sample is a fresh draw of one population and `n = 1000`
is possible from a few hundred real rows: under "no shift" the null hypothesis holds exactly.

An alarm is what `mlops monitor` breaches on: dataset drift (share of drifted features >= 0.5)
or prediction drift, the features and the predictions (class and top-class probability) tested
as one family. Evidently runs DataDriftPreset with its defaults on the same samples (reference:
the evaluation sample with its predictions; current: the live rows with theirs); its alarm is
dataset drift (share of drifted columns, the prediction included, >= 0.5) or a drifted prediction.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

METHODS = ["auto", "ks", "wasserstein", "jensenshannon", "psi", "auto-uncorrected"]
SIZES = [100, 300, 1000]
BANDWIDTH = 0.25


def datasets() -> dict[str, dict[str, Any]]:
    import pandas as pd
    from palmerpenguins import load_penguins
    from vega_datasets import local_data

    peng = load_penguins().dropna(subset=["species"])
    weather = local_data.seattle_weather()
    weather["year"] = pd.to_datetime(weather["date"]).dt.year
    return {
        "penguins": {
            "frame": peng,
            "target": "species",
            "features": [
                "bill_length_mm",
                "bill_depth_mm",
                "flipper_length_mm",
                "body_mass_g",
                "island",
                "sex",
            ],
            "reference": peng[peng.year <= 2008],
            "shifted": peng[peng.year == 2009],
            "shift": "year 2009 against 2007-2008",
        },
        "seattle-weather": {
            "frame": weather,
            "target": "weather",
            "features": ["precipitation", "temp_max", "temp_min", "wind"],
            "reference": weather[weather.year <= 2013],
            "shifted": weather[weather.year == 2015],
            "shift": "year 2015 against 2012-2013",
        },
    }


def _decimals(values: Any) -> int:
    import numpy as np

    v = np.asarray(values, dtype="float64")
    v = v[np.isfinite(v)]
    for d in range(4):
        if np.allclose(v, np.round(v, d)):
            return d
    return 4


def draw(rows: Any, features: list[str], n: int, rng: Any) -> Any:
    """A smoothed bootstrap sample of `n` rows (numbers jittered and rounded)."""
    import numpy as np

    sample = rows.iloc[rng.integers(0, len(rows), n)][features].reset_index(drop=True).copy()
    for col in features:
        if sample[col].dtype.kind in "if":
            std = float(rows[col].std())
            noise = rng.normal(0.0, BANDWIDTH * std, n)
            sample[col] = np.round(sample[col].astype("float64") + noise, _decimals(rows[col]))
    return sample


def fit(data: dict[str, Any], seed: int) -> tuple[Any, Any, Any]:
    from sklearn.linear_model import LogisticRegression

    from mlops.stages.train import build_pipeline, feature_columns

    ref = data["reference"].sample(frac=1.0, random_state=seed).reset_index(drop=True)
    cut = int(len(ref) * 0.6)
    train, held = ref.iloc[:cut], ref.iloc[cut:]
    X = train[data["features"]]
    numeric, categorical = feature_columns(X, data["target"], [])
    pipe = build_pipeline(numeric, categorical, LogisticRegression(max_iter=2000))
    pipe.fit(X, train[data["target"]])
    return pipe, train, held


def predictions_frame(model: Any, X: Any) -> Any:
    import pandas as pd

    return pd.DataFrame(
        {"prediction": model.predict(X), "confidence": model.predict_proba(X).max(axis=1)}
    )


def alarm(method: str, ref_profile: dict, pred_profile: dict, live: Any, live_pred: Any) -> bool:
    """What monitor breaches on, computed the way `mlops.monitor.checks._drift` computes it."""
    from mlops.config.models import DriftSpec
    from mlops.data.drift import compare, correct

    if method == "auto-uncorrected":
        spec = DriftSpec(method="auto", correction="none")
    else:
        spec = DriftSpec(method=method)
    names = list(live.columns)
    inputs = compare(live, ref_profile, spec, columns=names, family=2, defer_correction=True)
    preds = compare(
        live_pred,
        pred_profile,
        spec,
        columns=["prediction", "confidence"],
        family=len(names),
        defer_correction=True,
    )
    correct([inputs, preds], spec.correction, spec.alpha)
    return bool(inputs.dataset_drift or "prediction" in preds.drifted)


def _ranges(done: set[int], upto: int) -> list[tuple[int, int]]:
    """The trials of [0, upto) not in `done`, as half-open runs."""
    runs: list[tuple[int, int]] = []
    for trial in range(upto):
        if trial in done:
            continue
        if runs and runs[-1][1] == trial:
            runs[-1] = (runs[-1][0], trial + 1)
        else:
            runs.append((trial, trial + 1))
    return runs


def _chunks(runs: list[tuple[int, int]], size: int) -> list[tuple[int, int]]:
    return [(a, min(a + size, b)) for first, b in runs for a in range(first, b, size)]


def run_cells(args: argparse.Namespace) -> dict[str, Any]:
    """Run every missing trial of every selected cell, one chunk file per tool and chunk.

    Trial `i` of a cell is always the same sample: one random stream per cell (seed, n,
    traffic, dataset), each trial's three draws taken from it in order, so a run that starts at
    trial 200 first draws (and discards) trials 0-199. With `--cell-dir`, the trials already in
    the directory are kept and only the missing ones (up to `--samples`) are run."""
    import numpy as np
    import pandas as pd

    from mlops.data.profile import profile_frame

    cell_dir = Path(args.cell_dir) if args.cell_dir else None
    have = coverage(cell_dir) if cell_dir else {}
    results: dict[str, Any] = {}
    for name, data in datasets().items():
        if args.datasets and name not in args.datasets:
            continue
        model, train, held = fit(data, seed=0)
        feats = data["features"]
        for scenario in args.scenarios:
            source = held if scenario == "null" else data["shifted"]
            for n in args.sizes:
                key = f"{name}/{scenario}/{n}"
                upto = args.samples or (args.trials if scenario == "null" else args.shift_trials)
                todo = {
                    tool: _chunks(_ranges(have.get((key, tool), set()), upto), args.chunk)
                    for tool in args.tools
                }
                wanted = {t for tool in args.tools for a, b in todo[tool] for t in range(a, b)}
                if not wanted:
                    print(f"{key}: {upto} samples already there", flush=True)
                    continue
                rng = np.random.default_rng([args.seed, n, scenario == "shifted", len(name)])
                bits: dict[str, dict[int, int]] = {tool: {} for tool in args.tools}
                bits.update({m: {} for m in METHODS})
                saved: dict[int, Any] = {}
                t0 = time.perf_counter()
                for trial in range(max(wanted) + 1):
                    ref_inputs = draw(held, feats, len(train), rng)
                    eval_rows = draw(held, feats, len(held), rng)
                    live = draw(source, feats, n, rng)
                    if trial not in wanted:
                        continue  # drawn only to keep the stream: trial i is always sample i
                    eval_pred = predictions_frame(model, eval_rows)
                    live_pred = predictions_frame(model, live)
                    if any(a <= trial < b for a, b in todo.get("mlops", [])):
                        ref_profile = profile_frame(ref_inputs)
                        pred_profile = profile_frame(eval_pred)
                        for method in METHODS:
                            bits[method][trial] = int(
                                alarm(method, ref_profile, pred_profile, live, live_pred)
                            )
                    if any(a <= trial < b for a, b in todo.get("evidently", [])):
                        ref = pd.concat([eval_rows, eval_pred], axis=1).assign(side="ref")
                        cur = pd.concat([live, live_pred], axis=1).assign(side="cur")
                        saved[trial] = pd.concat([ref, cur], ignore_index=True).assign(trial=trial)
                    for tool in args.tools:
                        for a, b in todo[tool]:
                            if trial == b - 1:
                                row = _finish(args, key, tool, a, b, bits, saved, t0)
                                results.setdefault(key, []).append(row)
                                if cell_dir is not None:
                                    write_chunk(cell_dir, row)
                                t0 = time.perf_counter()
    return results


def _finish(
    args: argparse.Namespace,
    key: str,
    tool: str,
    first: int,
    end: int,
    bits: dict[str, dict[int, int]],
    saved: dict[int, Any],
    t0: float,
) -> dict[str, Any]:
    """One chunk's record: per column, the alarm of every trial in [first, end)."""
    import pandas as pd

    if tool == "mlops":
        alarms = {m: "".join(str(bits[m][t]) for t in range(first, end)) for m in METHODS}
    else:
        with tempfile.TemporaryDirectory() as tmp:
            frame = pd.concat([saved.pop(t) for t in range(first, end)], ignore_index=True)
            frame["prediction"] = frame["prediction"].astype(str)
            frame.to_parquet(Path(tmp) / "trials.parquet")
            proc = subprocess.run(
                [args.evidently, __file__, "--child-evidently", tmp],
                capture_output=True,
                text=True,
                check=True,
            )
        alarms = {"evidently": json.loads(proc.stdout.strip().splitlines()[-1])}
    row = {
        "key": key,
        "tool": tool,
        "first": first,
        "trials": end - first,
        "alarms": alarms,
        "seconds": round(time.perf_counter() - t0, 1),
    }
    rates = {c: round(v.count("1") / len(v), 3) for c, v in alarms.items()}
    print(f"{key} {tool} trials {first}-{end - 1}: {json.dumps(rates)}", flush=True)
    return row


def write_chunk(cell_dir: Path, row: dict[str, Any]) -> None:
    """One chunk's record in its own file, written atomically: runs of other cells or tools may
    share the directory (several processes, or one after another) without losing any work."""
    cell_dir.mkdir(parents=True, exist_ok=True)
    stem = row["key"].replace("/", "__")
    name = f"{stem}__{row['first']}-{row['first'] + row['trials']}__{row['tool']}.json"
    with tempfile.NamedTemporaryFile("w", dir=cell_dir, suffix=".tmp", delete=False) as fh:
        json.dump(row, fh, indent=1)
    Path(fh.name).replace(cell_dir / name)


def load_cells(cell_dir: Path) -> dict[tuple[str, str], dict[str, Any]]:
    """Per (cell, tool): alarm counts per column and the trials they cover.

    Chunk files carry every trial's alarm; the first pass's files (`<cell>.json`, one rate per
    column over trials 0..N-1) are read as counts. Two files covering one trial are an error
    unless they agree (a rerun of the same seeds)."""
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for path in sorted(cell_dir.glob("*.json")):
        doc = json.loads(path.read_text())
        if "key" in doc:
            rows = [doc]
        else:  # first pass: {key: {method: rate, ..., "trials": N, "evidently": rate}}
            ((key, old),) = doc.items()
            rows = []
            for tool, cols in (("mlops", METHODS), ("evidently", ["evidently"])):
                if all(c in old for c in cols):
                    counts = {c: round(old[c] * old["trials"]) for c in cols}
                    rows.append(
                        {
                            "key": key,
                            "tool": tool,
                            "first": 0,
                            "trials": old["trials"],
                            "counts": counts,
                        }
                    )
        for row in rows:
            cell = out.setdefault(
                (row["key"], row["tool"]), {"trials": set(), "counts": {}, "bits": {}}
            )
            span = set(range(row["first"], row["first"] + row["trials"]))
            if "alarms" in row:
                for col, v in row["alarms"].items():
                    for t, b in zip(
                        range(row["first"], row["first"] + row["trials"]), v, strict=True
                    ):
                        prev = cell["bits"].setdefault(col, {}).setdefault(t, b)
                        if prev != b:
                            raise SystemExit(f"{path.name}: trial {t} of {col} differs")
                new = span - cell["trials"]
                counts = {
                    c: sum(int(v[t - row["first"]]) for t in new) for c, v in row["alarms"].items()
                }
            else:
                if span & cell["trials"]:
                    raise SystemExit(f"{path.name}: overlaps other files of {row['key']}")
                new, counts = span, row["counts"]
            cell["trials"] |= new
            for c, k in counts.items():
                cell["counts"][c] = cell["counts"].get(c, 0) + k
    return out


def coverage(cell_dir: Path) -> dict[tuple[str, str], set[int]]:
    """The trials already measured, per (cell, tool)."""
    if not cell_dir.is_dir():
        return {}
    return {k: v["trials"] for k, v in load_cells(cell_dir).items()}


def upper_bound(k: int, n: int, level: float = 0.95) -> float:
    """One-sided Clopper-Pearson upper bound of a rate seen k times in n samples."""
    from scipy.stats import beta

    return 1.0 if k >= n else float(beta.ppf(level, k + 1, n - k))


def table(cells: dict[tuple[str, str], dict[str, Any]]) -> str:
    """The Markdown table of docs/benchmarks.md: each cell's exact sample counts; on held-out
    traffic each false-alarm rate with its one-sided 95% upper bound (Clopper-Pearson)."""
    cols = [*METHODS, "evidently"]
    traffic = {"null": "held-out (false alarms)", "shifted": "shifted (detections)"}
    lines = [
        "| dataset | traffic | n | samples (mlops / Evidently) | " + " | ".join(cols) + " |",
        "|---" * (len(cols) + 4) + "|",
    ]
    order = {"null": 0, "shifted": 1}
    keys = sorted(
        {k for k, _ in cells},
        key=lambda k: (order[k.split("/")[1]], k.split("/")[0], int(k.split("/")[2])),
    )
    for key in keys:
        name, scenario, n = key.split("/")
        parts, counts = [], []
        for tool in ("mlops", "evidently"):
            cell = cells.get((key, tool))
            if cell is None:
                counts.append("-")
                continue
            trials = len(cell["trials"])
            gap = "" if cell["trials"] == set(range(trials)) else " (not 0..N-1)"
            counts.append(f"{trials}{gap}")
            for c, k in cell["counts"].items():
                parts.append((c, k, trials))
        shown = {}
        for c, k, trials in parts:
            rate = f"{k / trials:.3f}"
            if scenario == "null":
                rate += f" (≤ {upper_bound(k, trials):.3f})"
            shown[c] = rate
        row = [shown.get(c, "not measured") for c in cols]
        lines.append(
            f"| {name} | {traffic[scenario]} | {n} | {' / '.join(counts)} | "
            + " | ".join(row)
            + " |"
        )
    return "\n".join(lines)


def child_evidently(sample_dir: str) -> str:
    """Run in Evidently's own environment: DataDriftPreset with defaults on every saved trial;
    one character per trial, in trial order ("1": an alarm)."""
    import warnings

    import pandas as pd
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    warnings.simplefilter("ignore")
    frame = pd.read_parquet(Path(sample_dir) / "trials.parquet")
    cols = [c for c in frame.columns if c not in ("trial", "side")]
    numeric = [c for c in cols if frame[c].dtype.kind in "if"]
    categorical = [c for c in cols if c not in numeric]
    definition = DataDefinition(numerical_columns=numeric, categorical_columns=categorical)
    bits = []
    for _, group in frame.groupby("trial"):
        ref = group[group.side == "ref"][cols].reset_index(drop=True)
        cur = group[group.side == "cur"][cols].reset_index(drop=True)
        snap = Report([DataDriftPreset()]).run(
            Dataset.from_pandas(cur, data_definition=definition),
            Dataset.from_pandas(ref, data_definition=definition),
        )
        dataset, prediction = False, False
        for m in snap.dict()["metrics"]:
            cfg = m.get("config", {})
            kind = cfg.get("type", "")
            if kind.endswith("ValueDrift") and cfg.get("column") == "prediction":
                p_value = "p_value" in cfg["method"]
                value, threshold = m["value"], cfg["threshold"]
                prediction = (value <= threshold) if p_value else (value >= threshold)
            elif kind.endswith("DriftedColumnsCount"):
                dataset = m["value"]["share"] >= cfg.get("drift_share", 0.5)
        bits.append("1" if dataset or prediction else "0")
    return "".join(bits)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=300, help="samples without a shift")
    parser.add_argument("--shift-trials", type=int, default=300, help="samples with the shift")
    parser.add_argument(
        "--samples",
        type=int,
        help="every selected cell up to this many samples (trials 0..N-1; overrides --trials "
        "and --shift-trials); with --cell-dir, trials already there are kept, not rerun",
    )
    parser.add_argument("--datasets", type=lambda s: s.split(","), default=None)
    parser.add_argument(
        "--scenarios", type=lambda s: s.split(","), default=["null", "shifted"], help="null,shifted"
    )
    parser.add_argument("--sizes", type=lambda s: [int(x) for x in s.split(",")], default=SIZES)
    parser.add_argument("--seed", type=int, default=16)
    parser.add_argument("--evidently", help="python of a venv with evidently 0.7 and pandas<3")
    parser.add_argument(
        "--tools",
        type=lambda s: s.split(","),
        help="mlops,evidently (default: mlops, and evidently when --evidently is given)",
    )
    parser.add_argument("--chunk", type=int, default=50, help="trials per chunk file")
    parser.add_argument(
        "--cell-dir",
        help="keep every chunk in DIR/<dataset>__<traffic>__<n>__<first>-<end>__<tool>.json "
        "(atomic) and run only the trials missing there",
    )
    parser.add_argument(
        "--table", metavar="DIR", help="print the table of the cells in DIR, run nothing"
    )
    parser.add_argument("--child-evidently", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_evidently:
        print(json.dumps(child_evidently(args.child_evidently)))
        return
    if args.table:
        print(table(load_cells(Path(args.table))))
        return
    if args.tools is None:
        args.tools = ["mlops", "evidently"] if args.evidently else ["mlops"]
    if "evidently" in args.tools and not args.evidently:
        parser.error("--tools evidently needs --evidently PYTHON")
    if args.cell_dir:
        run_cells(args)
        print(table(load_cells(Path(args.cell_dir))))
        return
    with tempfile.TemporaryDirectory() as tmp:
        args.cell_dir = tmp
        run_cells(args)
        print(table(load_cells(Path(tmp))))


if __name__ == "__main__":
    main()

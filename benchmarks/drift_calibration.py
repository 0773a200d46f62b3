"""False-alarm rate and detection rate of the drift alarms, side by side with Evidently's defaults.

    .venv/bin/python benchmarks/drift_calibration.py                 # mlops only
    python3 -m venv /tmp/evenv && /tmp/evenv/bin/pip install 'evidently==0.7.*' 'pandas<3' pyarrow
    .venv/bin/python benchmarks/drift_calibration.py --evidently /tmp/evenv/bin/python
    .venv/bin/python benchmarks/drift_calibration.py --trials 40 --sizes 100   # a quick look
    # one cell at a time (each cell's figures land in their own file), then the table:
    nice -n 15 .venv/bin/python benchmarks/drift_calibration.py --datasets penguins \
        --scenarios null --sizes 300 --trials 100 --evidently /tmp/evenv/bin/python \
        --cell-dir /tmp/drift-cells
    .venv/bin/python benchmarks/drift_calibration.py --table /tmp/drift-cells

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
import sys
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


def run_mlops(args: argparse.Namespace, sample_dir: Path | None) -> dict[str, Any]:
    import numpy as np
    import pandas as pd

    from mlops.data.profile import profile_frame

    results: dict[str, Any] = {}
    for name, data in datasets().items():
        if args.datasets and name not in args.datasets:
            continue
        model, train, held = fit(data, seed=0)
        feats = data["features"]
        for scenario in args.scenarios:
            source = held if scenario == "null" else data["shifted"]
            for n in args.sizes:
                rng = np.random.default_rng([args.seed, n, scenario == "shifted", len(name)])
                counts = dict.fromkeys(METHODS, 0)
                saved = []
                t0 = time.perf_counter()
                trials = args.trials if scenario == "null" else args.shift_trials
                for trial in range(trials):
                    ref_inputs = draw(held, feats, len(train), rng)
                    eval_rows = draw(held, feats, len(held), rng)
                    live = draw(source, feats, n, rng)
                    eval_pred = predictions_frame(model, eval_rows)
                    live_pred = predictions_frame(model, live)
                    ref_profile = profile_frame(ref_inputs)
                    pred_profile = profile_frame(eval_pred)
                    for method in METHODS:
                        counts[method] += alarm(method, ref_profile, pred_profile, live, live_pred)
                    if sample_dir is not None:
                        saved.append(
                            pd.concat([eval_rows, eval_pred], axis=1).assign(
                                trial=trial, side="ref"
                            )
                        )
                        saved.append(
                            pd.concat([live, live_pred], axis=1).assign(trial=trial, side="cur")
                        )
                key = f"{name}/{scenario}/{n}"
                results[key] = {m: counts[m] / trials for m in METHODS}
                results[key]["trials"] = trials
                results[key]["seconds"] = round(time.perf_counter() - t0, 1)
                if sample_dir is not None:
                    frame = pd.concat(saved, ignore_index=True)
                    frame["prediction"] = frame["prediction"].astype(str)
                    combo = sample_dir / key.replace("/", "__")
                    combo.mkdir()
                    frame.to_parquet(combo / f"{key.replace('/', '__')}.parquet")
                    proc = subprocess.run(
                        [args.evidently, __file__, "--child-evidently", str(combo)],
                        capture_output=True,
                        text=True,
                        check=True,
                    )
                    results[key]["evidently"] = json.loads(proc.stdout.strip().splitlines()[-1])[
                        key
                    ]
                print(key, json.dumps(results[key]), flush=True)
                if args.cell_dir:
                    write_cell(Path(args.cell_dir), key, results[key])
    return results


def write_cell(cell_dir: Path, key: str, row: dict[str, Any]) -> None:
    """One cell's figures in its own file, written atomically: runs of other cells may share
    the directory (several processes, or one after another) without losing each other's work."""
    cell_dir.mkdir(parents=True, exist_ok=True)
    target = cell_dir / (key.replace("/", "__") + ".json")
    with tempfile.NamedTemporaryFile("w", dir=cell_dir, suffix=".tmp", delete=False) as fh:
        json.dump({key: row}, fh, indent=2)
    Path(fh.name).replace(target)


def table(results: dict[str, Any]) -> str:
    """The Markdown table of docs/benchmarks.md, with each cell's sample count."""
    cols = [*METHODS, "evidently"]
    traffic = {"null": "held-out (false alarms)", "shifted": "shifted (detections)"}
    lines = [
        "| dataset | traffic | n | samples | " + " | ".join(cols) + " |",
        "|---" * (len(cols) + 4) + "|",
    ]
    order = {"null": 0, "shifted": 1}
    keys = sorted(
        results, key=lambda k: (order[k.split("/")[1]], k.split("/")[0], int(k.split("/")[2]))
    )
    for key in keys:
        name, scenario, n = key.split("/")
        row = results[key]
        cells = [f"{row[c]:.3f}" if c in row else "not measured" for c in cols]
        lines.append(
            f"| {name} | {traffic[scenario]} | {n} | {row['trials']} | " + " | ".join(cells) + " |"
        )
    return "\n".join(lines)


def child_evidently(sample_dir: str) -> dict[str, Any]:
    """Run in Evidently's own environment: DataDriftPreset with defaults on every saved trial."""
    import warnings

    import pandas as pd
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    warnings.simplefilter("ignore")
    out = {}
    for path in sorted(Path(sample_dir).glob("*.parquet")):
        frame = pd.read_parquet(path)
        cols = [c for c in frame.columns if c not in ("trial", "side")]
        numeric = [c for c in cols if frame[c].dtype.kind in "if"]
        categorical = [c for c in cols if c not in numeric]
        definition = DataDefinition(numerical_columns=numeric, categorical_columns=categorical)
        alarms = trials = 0
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
            alarms += bool(dataset or prediction)
            trials += 1
        name, scenario, n = path.stem.split("__")
        out[f"{name}/{scenario}/{n}"] = alarms / trials
        print(f"evidently {name}/{scenario}/{n}: {alarms / trials:.3f}", file=sys.stderr)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=200, help="samples without a shift")
    parser.add_argument("--shift-trials", type=int, default=100, help="samples with the shift")
    parser.add_argument("--datasets", type=lambda s: s.split(","), default=None)
    parser.add_argument(
        "--scenarios", type=lambda s: s.split(","), default=["null", "shifted"], help="null,shifted"
    )
    parser.add_argument("--sizes", type=lambda s: [int(x) for x in s.split(",")], default=SIZES)
    parser.add_argument("--seed", type=int, default=16)
    parser.add_argument("--evidently", help="python of a venv with evidently 0.7 and pandas<3")
    parser.add_argument("--out", default="benchmarks/drift_calibration.json")
    parser.add_argument(
        "--cell-dir", help="also write each cell to DIR/<dataset>__<traffic>__<n>.json (atomic)"
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
        merged: dict[str, Any] = {}
        for path in sorted(Path(args.table).glob("*.json")):
            merged.update(json.loads(path.read_text()))
        print(table(merged))
        return
    with tempfile.TemporaryDirectory() as tmp:
        sample_dir = Path(tmp) if args.evidently else None
        results = run_mlops(args, sample_dir)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print(table(results))


if __name__ == "__main__":
    main()

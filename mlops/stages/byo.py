"""Bring your own training script: `save_model` turns a fitted model into what `evaluate` takes.

The contract (docs/own-model-code.md): a `cmd:` stage of pipeline.yaml runs your script from the
project root and declares `build/<model name>/` (`model.fit_path`) as its output; the built-in
`evaluate` stage after it depends on that directory. Your script fits any scikit-learn-compatible
model that predicts from a pandas DataFrame of the raw feature columns (a `Pipeline` with its
preprocessing inside, a LightGBM model...), then calls

    from mlops.stages import save_model
    save_model(model, train_frame)            # train_frame: the training rows, target included

which writes `model.skops` (deterministic skops archive), `schema.json` (what serving accepts),
`reference.json` (the training profile monitoring compares live traffic with) and `fit.json`
(task, features, classes, hyper-parameters, training curve, pinned code) exactly as the
built-in train stage does. The model's types are checked against the allow-list and
`model.trusted_types` before anything is written, so evaluate, register, deploy, serve and
monitor accept the result unchanged.
"""

from __future__ import annotations

import io
import json
import platform
import zipfile
from collections.abc import Collection
from pathlib import Path
from typing import Any

from mlops.bundle.core import BundleError
from mlops.errors import UsageError


def save_model(
    model: Any,
    sample_frame: Any,
    *,
    root: Path | str = ".",
    features: Collection[str] | None = None,
    data: str | None = None,
    hyperparameters: dict[str, Any] | None = None,
    warnings: list[str] | None = None,
) -> Path:
    """Write the fitted `model` as the train stage's output (`build/<name>/`); return that path.

    `sample_frame`: the training rows (a DataFrame with the target column of pipeline.yaml);
    its feature columns (all but the target, or `features`) become the input schema and the
    drift reference. `data`: the training file the script read (its md5 is recorded).
    `hyperparameters`: recorded with the bundle (default: the model's own `get_params()` of
    its last step, plain values only). `warnings`: ConvergenceWarning messages your fit raised
    (the `converged: true` gate reads them). Raises `UsageError` (exit 2) for a frame or model
    that does not fit the contract, `BundleError` (exit 6) for a type mlops would not load.
    """
    import numpy as np
    import pandas as pd
    import sklearn
    from sklearn.exceptions import NotFittedError
    from sklearn.utils.validation import check_is_fitted

    from mlops import __version__
    from mlops.bundle.archive import dumps
    from mlops.bundle.codepin import pin
    from mlops.bundle.trust import audit, type_names
    from mlops.config import load_project
    from mlops.config.yamlfile import atomic_write_bytes, atomic_write_text
    from mlops.data.io import md5_file
    from mlops.data.profile import profile_frame
    from mlops.stages.custom import CURVE_FILE, curve_csv, training_record
    from mlops.stages.task import infer_task
    from mlops.stages.train import feature_columns, input_schema, read_contract

    project = load_project(Path(root))
    spec = project.pipeline.model
    if not isinstance(sample_frame, pd.DataFrame):
        raise UsageError("save_model: sample_frame must be a pandas DataFrame of training rows")
    if spec.target not in sample_frame.columns:
        raise UsageError(
            f"save_model: the target column {spec.target!r} is not in sample_frame",
            "Pass the training rows with their label column (model.target in pipeline.yaml).",
        )
    if not hasattr(model, "predict"):
        raise UsageError("save_model: the model has no predict()")
    try:
        check_is_fitted(model)
    except NotFittedError:
        raise UsageError("save_model: the model is not fitted", "Call fit() first.") from None
    except TypeError:  # not an estimator check_is_fitted understands: trust predict()
        pass
    df = sample_frame[sample_frame[spec.target].notna()]
    exclude = [c for c in df.columns if features is not None and c not in set(features)]
    numeric, categorical = feature_columns(df, spec.target, exclude)
    if not numeric and not categorical:
        raise UsageError("save_model: sample_frame has no feature columns besides the target")
    task = infer_task(df[spec.target], spec.task)

    model_bytes = dumps(model)
    with zipfile.ZipFile(io.BytesIO(model_bytes)) as zf:
        names = type_names(json.loads(zf.read("schema.json")))
    out = project.path(spec.fit_path)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out / "model.skops", model_bytes)
    refused, _ = audit(out / "model.skops", spec.trusted_types)
    if refused:
        (out / "model.skops").unlink()
        raise BundleError(
            f"save_model: the model contains types mlops does not load: {', '.join(refused)}",
            "List your project's own classes (exact `module.Class`) under "
            "`model.trusted_types:` in pipeline.yaml; never a function.",
            details=refused,
        )
    est = model.steps[-1][1] if hasattr(model, "steps") else model
    training = training_record(est, list(warnings or []))
    found = training.pop("_curves")
    if found:
        atomic_write_text(out / CURVE_FILE, curve_csv(found))
    elif (out / CURVE_FILE).exists():
        (out / CURVE_FILE).unlink()
    schema = input_schema(df, numeric, categorical, read_contract(project))
    reference = profile_frame(df[numeric + categorical + [spec.target]])
    reference["target"] = spec.target
    atomic_write_text(out / "schema.json", json.dumps(schema, indent=2) + "\n")
    atomic_write_text(out / "reference.json", json.dumps(reference, indent=2) + "\n")
    if hyperparameters is None:
        hyperparameters = {
            k: v
            for k, v in est.get_params(deep=False).items()
            if isinstance(v, str | int | float | bool) or v is None
        }
    fit = {
        "name": spec.name,
        "task": task,
        "target": spec.target,
        "features": numeric + categorical,
        "numeric": numeric,
        "categorical": categorical,
        "classes": [c.item() if hasattr(c, "item") else c for c in getattr(model, "classes_", [])],
        "estimator": f"{type(est).__module__}.{type(est).__qualname__}",
        "hyperparameters": hyperparameters,
        "tuning": None,
        "train_rows": len(df),
        "data": {data: md5_file(project.path(data))} if data else {},
        "versions": {
            "mlops": __version__,
            "python": platform.python_version(),
            "scikit-learn": sklearn.__version__,
            "numpy": np.__version__,
        },
        "training": training,
        "code": pin(names, project.root),
        "saved_by": "save_model",
    }
    atomic_write_text(out / "fit.json", json.dumps(fit, indent=2, default=str) + "\n")
    return out

"""The smoke test of an installed version: it loads, its schema holds, and it predicts.

Run on the installed copy (after its hashes were checked again) before `current` is switched to
it, with the same code `mlops serve` uses: the input checks of `schema.json` and the compiled
predictor, so a version that passes here is one the service can load and answer with.
"""

from __future__ import annotations

import math
import time
from collections.abc import Collection
from pathlib import Path
from typing import Any

from mlops.bundle import BundleError, load_bundle
from mlops.errors import DeployError

SAMPLE_ROWS = 32


class SmokeTestFailed(DeployError):
    """The installed version did not load, did not accept its own schema, or did not predict."""


def smoke_test(
    path: Path,
    *,
    extra_files: tuple[str, ...] = (),
    trusted_types: Collection[str] = (),
    code_root: Path | None = None,
) -> dict[str, Any]:
    """Load the bundle at `path`, validate sample rows against its schema, predict them.

    `trusted_types`: the project's own type names the model may contain (`model.trusted_types`);
    a model holding any other type outside mlops' allow-list is refused before it is built.
    `code_root`: where the project's own code is installed (a bundle pinning code whose hash
    differs is refused, `mlops.bundle.codepin`).

    Returns {rows, mode, seconds, classes}; raises `SmokeTestFailed` saying what went wrong.
    """
    from mlops.bundle.inputs import InputSpec, RequestError
    from mlops.bundle.predictor import Predictor, sample_columns

    t0 = time.perf_counter()
    try:
        bundle = load_bundle(
            path, extra_files=extra_files, trusted_types=trusted_types, code_root=code_root
        )
    except (DeployError, BundleError):
        raise
    except Exception as exc:
        raise SmokeTestFailed(f"the model does not load: {type(exc).__name__}: {exc}") from None
    spec = InputSpec.from_schema(bundle.schema)
    if not spec.features:
        raise SmokeTestFailed("schema.json lists no input features")
    cols, n = sample_columns(spec, seed=0, n=SAMPLE_ROWS)
    try:
        batch = spec.check(cols, n)
    except RequestError as exc:
        raise SmokeTestFailed(
            f"sample rows drawn from schema.json fail its own checks: {exc.message}"
        ) from None
    try:
        predictor = Predictor.load(bundle.model, spec)
        labels, proba = predictor.predict(batch.columns, n)
    except Exception as exc:
        raise SmokeTestFailed(
            f"predicting {n} sample rows failed: {type(exc).__name__}: {exc}"
        ) from None
    problems = _check_outputs(labels, proba, predictor.classes, n)
    if problems:
        raise SmokeTestFailed(f"the predictions of {n} sample rows are wrong: {problems}")
    return {
        "rows": n,
        "mode": predictor.mode,
        "seconds": round(time.perf_counter() - t0, 3),
        "classes": predictor.classes,
    }


def _check_outputs(labels: list[Any], proba: Any, classes: list[Any] | None, n: int) -> str:
    if len(labels) != n:
        return f"{len(labels)} predictions for {n} rows"
    if classes is None:
        bad = [v for v in labels if not isinstance(v, int | float) or not math.isfinite(v)]
        return f"{len(bad)} values are not finite numbers" if bad else ""
    known = set(classes)
    unknown = sorted({str(v) for v in labels if v not in known})
    if unknown:
        return f"labels outside the model's classes: {', '.join(unknown[:5])}"
    if proba is not None:
        import numpy as np

        p = np.asarray(proba, dtype=float)
        if p.shape != (n, len(classes)) or not np.all(np.isfinite(p)):
            return "class probabilities have the wrong shape or are not finite"
        if not np.allclose(p.sum(axis=1), 1.0, atol=1e-6):
            return "class probabilities do not sum to 1"
    return ""

"""The model bundle `models/<name>/`: a fitted pipeline and all it takes to trust and serve it.

Files: `model.skops` (the fitted scikit-learn Pipeline, preprocessing inside), `schema.json` (input
schema), `reference.json` (training-data profile for drift), `metrics.json`, and `metadata.json`
(name, task, features, data hashes, params, metrics, verdict, and the sha256 of every other
file). `load_bundle` refuses a bundle whose files do not match those hashes. A bundle records no
commit and no wall time (the same inputs give the same bytes): the commit of a version is its
registration tag's, the training commit is in the run record (`mlops runs show`).

`mlops.stages.save_model` (a training script of your own, `mlops.stages.byo`) writes what the
built-in train stage writes; `mlops.bundle.codepin` pins the project code a model needs by hash.
"""

from typing import Any

from mlops.bundle.core import (
    METADATA,
    MODEL_FILE,
    Bundle,
    BundleError,
    check_model_file,
    load_bundle,
    load_model_file,
    read_metadata,
    verify_bundle,
    write_bundle,
)

__all__ = [
    "METADATA",
    "MODEL_FILE",
    "Bundle",
    "BundleError",
    "check_model_file",
    "load_bundle",
    "load_model_file",
    "read_metadata",
    "verify_bundle",
    "write_bundle",
]


def __getattr__(name: str) -> Any:
    if name == "save_model":  # it builds a bundle with the train stage's code, a layer above
        raise ImportError(
            "mlops.bundle.save_model moved to mlops.stages.save_model: "
            "`from mlops.stages import save_model`"
        )
    raise AttributeError(f"module 'mlops.bundle' has no attribute {name!r}")

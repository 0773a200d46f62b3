"""Built-in stages. DVC runs each as `python -m mlops.stages <stage-name>` from the project root.

Each module has `run(project, stage)`: it reads its inputs, writes its outputs atomically, and
returns (or yields, printed as they come) lines to show in the stage log. Failures raise
`MlopsError`s whose exit code `mlops run` maps back (3 invalid data, 2 configuration, 8 anything
else).

`save_model` (`mlops.stages.byo`, imported on first use): a training script of your own (a `cmd:`
stage) writes what the built-in train stage writes: `from mlops.stages import save_model`.
"""

from typing import Any

BUILTINS = ("ingest", "validate", "split", "train", "evaluate")


def __getattr__(name: str) -> Any:
    if name == "save_model":
        from mlops.stages.byo import save_model

        return save_model
    raise AttributeError(f"module 'mlops.stages' has no attribute {name!r}")

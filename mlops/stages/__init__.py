"""Built-in stages. DVC runs each as `python -m mlops.stages <stage-name>` from the project root.

Each module has `run(project, stage)`: it reads its inputs, writes its outputs atomically, and
returns (or yields, printed as they come) lines to show in the stage log. Failures raise
`MlopsError`s whose exit code `mlops run` maps back (3 invalid data, 2 configuration, 8 anything
else).
"""

BUILTINS = ("ingest", "validate", "split", "train", "evaluate")

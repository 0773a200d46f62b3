"""The warm runner: built-in stages run in a fork of a process that has imported their libraries.

DVC runs every built-in stage as `python -m mlops.stages NAME`. Started fresh, each such process
spends seconds importing pandas, scikit-learn, skops and pandera before it computes anything.
`mlops run` and `mlops exp run` start a runner for the duration of the command (or `mlops runner
start` keeps one alive): a process that has imported those libraries once and listens on a Unix
socket keyed by the repository's git common directory. The stage command becomes a thin client
(`mlops.handoff.client`): when a runner for its repository is listening, it hands over its
arguments, working directory, environment, resource limits and its stdin/stdout/stderr
descriptors (SCM_RIGHTS); the runner forks a fresh child that applies them and runs the stage
exactly as the command would have; the client relays signals and exits with the child's status.
When no runner listens (`dvc repro`, `dvc exp run`, CI without `mlops run`), the command runs the
stage in-process as before. See docs/architecture.md, "The warm runner".

Modules: `server` (the runner's loop and the forked child), `lifecycle`
(start, stop, status; the session `mlops run` opens).
"""

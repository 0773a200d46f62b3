"""The stage command's side of the warm runner (`mlops.runner`): standard library only.

`python -m mlops.stages NAME` (DVC's stage command) looks for a runner of its repository and,
when one listens, hands the stage over to it (`client`); `address` says where a repository's
runner listens and which import-time facts a runner must share with its clients. Both the stage
command (in `mlops.stages`) and the runner (above it) use them, so they sit below both, in the
bottom layer of the import contract; every stage command imports them, so they import nothing
but the standard library.
"""

OFF_ENV = "MLOPS_RUNNER"  # "0": never start or use a runner (the stage runs in-process)
DIR_ENV = "MLOPS_RUNNER_DIR"  # where sockets live (default: $XDG_RUNTIME_DIR/mlops or /tmp)

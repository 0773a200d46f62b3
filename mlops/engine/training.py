"""Training on a Dask cluster: joblib work on the workers, `partial_fit` over partitions.

`joblib_on_cluster()` routes scikit-learn's joblib parallelism (a search's candidate x fold fits,
a forest's trees) to the cluster through joblib's `dask` backend. `DaskPartitions` is the
partition source the incremental trainer (`mlops.stages.incremental`) walks: `map` runs a
function on every partition where it lives and returns the small results in order; `fold`
carries a value (the estimator) from partition to partition, so the data stays on the workers
and only the model travels.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

from mlops.engine.cluster import compute_result

BACKEND = "mlops-dask"


class SequentialBatch:
    """Runs one batch of joblib calls on a worker, with joblib work inside them sequential."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __call__(self, tasks: list[tuple[Any, Any, Any]] | None = None) -> list[Any]:
        import joblib

        with joblib.parallel_config(backend="sequential"):
            return [func(*args, **kwargs) for func, args, kwargs in tasks or []]

    def __repr__(self) -> str:
        return self.name


def _register_backend() -> str:
    """joblib's dask backend, except that joblib work nested inside a task (a forest's trees
    inside one candidate's fit, a ColumnTransformer's blocks) runs sequentially in that task.

    joblib's own `dask` backend sends nested calls to the cluster as well and ignores `n_jobs`
    there, so a 24-fit search became ~300 tiny tasks and ran slower than one process (measured:
    benchmarks/scaling.py). Falls back to the plain `dask` backend if joblib's layout changes."""
    import joblib

    try:
        from joblib._dask import DaskDistributedBackend
        from joblib._parallel_backends import SequentialBackend
    except ImportError:  # pragma: no cover - a joblib without these modules
        return "dask"

    class OuterDaskBackend(DaskDistributedBackend):
        def get_nested_backend(self) -> tuple[Any, Any]:
            level = getattr(self, "nesting_level", 0) or 0
            return SequentialBackend(nesting_level=level + 1), None

        async def _to_func_args(self, func: Any) -> tuple[Any, Any]:
            batch, tasks = await super()._to_func_args(func)
            return SequentialBatch(repr(batch)), tasks

    joblib.register_parallel_backend(BACKEND, OuterDaskBackend)
    return BACKEND


@contextlib.contextmanager
def joblib_on_cluster() -> Iterator[None]:
    """joblib work in the block goes to the cluster (needs a connected `distributed.Client`):
    the outermost parallel loop - a search's candidates x folds, or an estimator's own `n_jobs`
    work - is spread over the workers; anything nested runs inside each task."""
    import joblib

    with joblib.parallel_config(backend=_register_backend()):
        yield


class DaskPartitions:
    """The partitions of a table read with `mlops.engine.frames.read_dask`."""

    def __init__(self, client: Any, path: str, *, partition_bytes: int) -> None:
        from mlops.engine.frames import partitions, read_dask

        self.client = client
        self.parts = partitions(read_dask(path, partition_bytes=partition_bytes))

    def __len__(self) -> int:
        return len(self.parts)

    def map(self, fn: Callable[..., Any], *args: Any) -> list[Any]:
        """`[fn(frame, index, *args) for each partition]`, computed on the workers."""
        import dask

        task = dask.delayed(fn, pure=True)
        results = [task(part, i, *args) for i, part in enumerate(self.parts)]
        return list(compute_result(self.client, results, "a task over the partitions"))

    def fold(self, fn: Callable[..., Any], value: Any, *args: Any) -> Any:
        """`value = fn(value, frame, *args)` over the partitions in order, each step on the
        worker that holds the partition; returns the final value."""
        import dask

        task = dask.delayed(fn, pure=False)
        for part in self.parts:
            value = task(value, part, *args)
        return compute_result(self.client, value, "training over the partitions")

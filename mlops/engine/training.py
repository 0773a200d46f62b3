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


@contextlib.contextmanager
def joblib_on_cluster() -> Iterator[None]:
    """joblib's `dask` backend for the block (needs a connected `distributed.Client`)."""
    import joblib

    with joblib.parallel_config(backend="dask"):
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
        return list(self.client.compute(results, sync=True))

    def fold(self, fn: Callable[..., Any], value: Any, *args: Any) -> Any:
        """`value = fn(value, frame, *args)` over the partitions in order, each step on the
        worker that holds the partition; returns the final value."""
        import dask

        task = dask.delayed(fn, pure=False)
        for part in self.parts:
            value = task(value, part, *args)
        return self.client.compute(value, sync=True)

"""Where the built-in stages compute: in their own process (`engine: local`) or on a Dask cluster.

`cluster` connects to the scheduler pipeline.yaml or `DASK_SCHEDULER_ADDRESS` names (or starts a
local cluster) and checks the workers can run mlops and see the data; `frames` reads tables as
Dask dataframes; `profiling` validates and profiles them partition by partition on the workers
and merges the per-partition states (validation counts, profile sketches) into one report;
`training` runs joblib work on the cluster and trains estimators with `partial_fit` over
partitions. Dask is imported only inside these functions (the `dask` extra).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mlops.config.models import EngineSpec


def uses_dask(spec: EngineSpec) -> bool:
    """True when pipeline.yaml asks for a Dask cluster."""
    return spec.kind == "dask"

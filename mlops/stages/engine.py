"""The engine a built-in stage computes on (pipeline.yaml's `engine:`), opened for one stage."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mlops.engine.cluster import EngineInfo

if TYPE_CHECKING:
    from mlops.config import Project
    from mlops.config.models import EngineSpec


@dataclass
class Engine:
    spec: EngineSpec
    info: EngineInfo
    client: Any = None  # a distributed.Client with `engine: dask`

    @property
    def dask(self) -> bool:
        return self.client is not None

    @property
    def partition_bytes(self) -> int:
        return self.spec.partition_mb << 20


@contextlib.contextmanager
def open_engine(project: Project, data: list[str] | None = None) -> Iterator[Engine]:
    """The project's engine: nothing to open for `local`; for `dask` a connected client whose
    workers were checked to run this mlops and to see the local paths in `data`."""
    spec = project.pipeline.engine
    if spec.kind != "dask":
        yield Engine(spec, EngineInfo("local"))
        return
    from mlops.engine.cluster import check_workers, connect

    with connect(spec) as (client, info):
        check_workers(client, data)
        yield Engine(spec, info, client)


def data_path(project: Project, path: str) -> str:
    """A path the workers can open: URLs as they are, project paths made absolute."""
    return path if "://" in path else str(project.path(path))

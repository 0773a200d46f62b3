"""Connect to the Dask cluster pipeline.yaml names, describe it, and check its workers.

The address comes from `engine.scheduler` in pipeline.yaml, else `DASK_SCHEDULER_ADDRESS` (the
variable Dask itself reads); `scheduler: local` starts a `LocalCluster` on 127.0.0.1 for the
duration of one stage. Workers must run the same mlops version (partition tasks are mlops
functions) and, for files on disk, see the project at the same path (a shared file system);
`check_workers` says so before any work is sent.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from mlops.errors import UsageError

if TYPE_CHECKING:
    from distributed import Client

    from mlops.config.models import EngineSpec

ENV_ADDRESS = "DASK_SCHEDULER_ADDRESS"
LOCAL = "local"
STALL_SECONDS = 120.0  # every worker paused on memory this long: the work cannot go on
POLL_SECONDS = 2.0
MEMORY_HINT = (
    "Lower `engine.partition_mb` in pipeline.yaml (smaller partitions: less memory per task), "
    "give the workers more memory (`dask worker --memory-limit`, or `engine.memory_limit` for "
    "`scheduler: local`), or add workers."
)


@dataclass
class EngineInfo:
    """What a stage runs on: for `dask`, the scheduler, its dashboard and its workers."""

    kind: str
    address: str | None = None
    source: str | None = None  # pipeline.yaml | DASK_SCHEDULER_ADDRESS | local cluster
    dashboard: str | None = None
    workers: int = 0
    threads: int = 0
    memory_limit: int = 0  # bytes, all workers together (0: unlimited)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def line(self) -> str:
        """`dask: tcp://... (2 workers, 2 threads, 1.0 GiB); dashboard http://...`."""
        if self.kind != "dask":
            return "engine: local (this process)"
        if self.address == LOCAL:
            return "dask: a local cluster started for each stage (its dashboard in the stage log)"
        size = f", {self.memory_limit / 2**30:.1f} GiB" if self.memory_limit else ""
        text = (
            f"dask: {self.address} from {self.source} ({self.workers} workers, "
            f"{self.threads} threads{size})"
        )
        return text + (f"; dashboard {self.dashboard}" if self.dashboard else "")


def scheduler_address(
    spec: EngineSpec, environ: Mapping[str, str] | None = None
) -> tuple[str, str]:
    """(address, where it came from): pipeline.yaml first, then `DASK_SCHEDULER_ADDRESS`."""
    env = os.environ if environ is None else environ
    if spec.scheduler:
        return spec.scheduler, "pipeline.yaml"
    if env.get(ENV_ADDRESS):
        return env[ENV_ADDRESS], ENV_ADDRESS
    raise UsageError(
        "pipeline.yaml says `engine: dask` but names no scheduler",
        f"Export {ENV_ADDRESS}=tcp://HOST:8786, set `engine: {{kind: dask, scheduler: "
        "tcp://HOST:8786}` in pipeline.yaml, or `scheduler: local` to start a cluster on this "
        "machine for each stage.",
    )


def _require_distributed() -> None:
    try:
        import dask.dataframe  # noqa: F401
        import distributed  # noqa: F401
    except ImportError:
        raise UsageError(
            "pipeline.yaml says `engine: dask`, but Dask is not installed here",
            "Install the `dask` extra the way mlops was installed (in a checkout: pip install -e "
            "'.[dask]'; the workers need it too), or set `engine: local`.",
        ) from None


def describe(client: Client, spec: EngineSpec, address: str, source: str) -> EngineInfo:
    """The cluster as the scheduler reports it now."""
    workers = client.scheduler_info(n_workers=-1).get("workers", {})
    return EngineInfo(
        kind="dask",
        address=address,
        source=source,
        dashboard=client.dashboard_link or None,
        workers=len(workers),
        threads=sum(int(w.get("nthreads", 0)) for w in workers.values()),
        memory_limit=sum(int(w.get("memory_limit") or 0) for w in workers.values()),
    )


@contextlib.contextmanager
def connect(
    spec: EngineSpec,
    *,
    environ: Mapping[str, str] | None = None,
    on_connect: Callable[[EngineInfo], None] | None = None,
) -> Iterator[tuple[Client, EngineInfo]]:
    """A client of the cluster `spec` names (started here for `scheduler: local`), closed after.

    Raises UsageError (exit 2) when Dask is missing, no address is configured, the scheduler
    does not answer within `spec.timeout` seconds, or it has no workers.
    """
    _require_distributed()
    from distributed import Client, LocalCluster

    address, source = scheduler_address(spec, environ)
    logging.getLogger("distributed").setLevel(logging.WARNING)
    cluster = None
    try:
        if address == LOCAL:
            kwargs: dict[str, Any] = {"host": "127.0.0.1", "dashboard_address": "127.0.0.1:0"}
            if spec.workers is not None:
                kwargs["n_workers"] = spec.workers
            if spec.threads_per_worker is not None:
                kwargs["threads_per_worker"] = spec.threads_per_worker
            if spec.memory_limit is not None:
                kwargs["memory_limit"] = spec.memory_limit
            cluster = LocalCluster(**kwargs)
            client = Client(cluster)
            address, source = cluster.scheduler_address, "local cluster"
        else:
            client = Client(address, timeout=f"{spec.timeout}s")
    except (OSError, TimeoutError) as exc:
        if cluster is not None:
            cluster.close()
        raise UsageError(
            f"cannot reach the Dask scheduler at {address} (from {source}): {exc}",
            "Start it (`dask scheduler` and `dask worker ADDRESS`) or fix the address; "
            "`mlops engine` checks the connection.",
        ) from None
    try:
        try:
            client.wait_for_workers(1, timeout=spec.timeout)
        except (TimeoutError, OSError):
            raise UsageError(
                f"the Dask scheduler at {address} has no workers",
                f"Start one: `dask worker {address}`.",
            ) from None
        info = describe(client, spec, address, source)
        if on_connect is not None:
            on_connect(info)
        yield client, info
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _probe(paths: list[str]) -> dict[str, Any]:
    """Runs on each worker: its mlops version and which of `paths` it cannot see."""
    from mlops import __version__

    return {"mlops": __version__, "missing": [p for p in paths if not os.path.exists(p)]}


def check_workers(client: Client, paths: list[str] | None = None) -> None:
    """Every worker can import this mlops version and (for local paths) see `paths`."""
    from mlops import __version__

    local = [p for p in paths or [] if "://" not in p and not any(c in p for c in "*?[")]
    try:
        answers = client.run(_probe, local)
    except (ImportError, AttributeError) as exc:
        raise UsageError(
            f"the Dask workers cannot run mlops ({exc})",
            f"Install mlops {__version__} with the dask extra on every worker, from where "
            "this one came (the runner's MLOPS_PIP_SPEC, with [dask] for [serve]).",
        ) from None
    for worker, answer in sorted(answers.items()):
        if answer["mlops"] != __version__:
            raise UsageError(
                f"worker {worker} runs mlops {answer['mlops']}, this stage {__version__}",
                f"Install mlops {__version__} on every worker.",
            )
        if answer["missing"]:
            raise UsageError(
                f"worker {worker} cannot see {', '.join(answer['missing'])}",
                "Workers read the data themselves: mount the project at the same path on "
                "every worker (NFS, a Kubernetes volume), or keep the data in object storage "
                "(s3://...).",
            )


def probe(spec: EngineSpec, *, connect_local: bool = True) -> EngineInfo:
    """The engine `spec` names, checked: for `dask`, connect, check the workers, describe.

    With `scheduler: local` and `connect_local=False`, nothing is started (each stage starts
    its own cluster) and the info says so."""
    if spec.kind != "dask":
        return EngineInfo("local")
    address, _ = scheduler_address(spec)
    if address == LOCAL and not connect_local:
        return EngineInfo("dask", LOCAL, "pipeline.yaml")
    with connect(spec) as (client, info):
        check_workers(client)
        return info


def compute_result(client: Client, value: Any, what: str) -> Any:
    """Compute `value` (a dask collection, a delayed or a list of them) on the cluster and
    return its result, watched as `watch` does."""
    futures = client.compute(value)
    if not isinstance(futures, list):
        return watch(client, futures, what)
    try:
        return [watch(client, f, what) for f in futures]
    finally:
        for f in futures:
            if not f.done():
                f.cancel()


def watch(client: Client, future: Any, what: str) -> Any:
    """The result of `future`; a worker killed for memory, or every worker paused on memory
    for `STALL_SECONDS`, is a `UsageError` that says what to change (instead of a traceback or
    a wait without end). The future is cancelled when it cannot finish."""
    import time

    from distributed.scheduler import KilledWorker

    paused_since: float | None = None
    try:
        while True:
            try:
                return future.result(timeout=POLL_SECONDS)
            except TimeoutError:
                pass
            workers = client.scheduler_info(n_workers=-1).get("workers", {}).values()
            statuses = {str(w.get("status", "")) for w in workers}
            if statuses and statuses <= {"paused", "Status.paused"}:
                paused_since = paused_since or time.monotonic()
                if time.monotonic() - paused_since >= STALL_SECONDS:
                    raise UsageError(
                        f"{what} cannot go on: every Dask worker has paused at its memory "
                        f"limit for {STALL_SECONDS:.0f} s",
                        MEMORY_HINT,
                    )
            else:
                paused_since = None
    except KilledWorker as exc:
        raise UsageError(
            f"{what} failed: Dask workers died while running it, most likely over their "
            f"memory limit ({str(exc).split(':', 1)[0]})",
            MEMORY_HINT,
        ) from None
    finally:
        if not future.done():
            future.cancel()

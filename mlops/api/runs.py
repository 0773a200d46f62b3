"""`mlops runs`: the recorded runs, listed, shown, compared, pushed and pulled (re-exported by
`mlops.api`)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mlops.pipeline.compare import RunDiff
    from mlops.pipeline.records import RunRecord


def runs_list(
    root: Path | str = ".",
    limit: int | None = 20,
    *,
    where: str | None = None,
    sort: str | None = None,
    descending: bool = False,
) -> list[RunRecord]:
    """Recorded runs, most recent first, or filtered and sorted (`mlops runs list`).

    `where` is a filter such as `metrics.accuracy > 0.9 and params.train.C < 1` (see
    `mlops.pipeline.query`); `sort` a field such as `metrics.accuracy`.
    """
    from mlops.pipeline.records import RunStore

    store = RunStore(Path(root).resolve())
    if not where and not sort:
        return store.list(limit=limit)
    return store.select(where, sort, descending, limit)  # in SQL (mlops.pipeline.querysql)


def runs_show(root: Path | str = ".", run_id: str = "latest") -> RunRecord:
    """One recorded run by id, id prefix, or `latest` (`mlops runs show`)."""
    from mlops.pipeline.records import RunStore

    return RunStore(Path(root).resolve()).get(run_id)


def runs_diff(root: Path | str, a: str, b: str, *, all_params: bool = False) -> RunDiff:
    """Two runs' params and metrics side by side (`mlops runs diff A B`)."""
    from mlops.pipeline.compare import diff_runs
    from mlops.pipeline.records import RunStore

    store = RunStore(Path(root).resolve())
    return diff_runs(store.get(a), store.get(b), all_params=all_params)


def runs_push(root: Path | str = ".", remote: str = "origin") -> int:
    """Push every run record to `remote` (`mlops runs push`); how many the repository holds.

    Raises `GitStateError` when git refuses (the message says why, credentials redacted)."""
    from mlops.adapters.git import redact
    from mlops.errors import GitStateError
    from mlops.pipeline import gitrecords
    from mlops.pipeline.records import RunStore

    root = Path(root).resolve()
    RunStore(root).sync()  # records saved before they were stored in git are in the index only
    refs = gitrecords.local_refs(root)
    if not refs:
        return 0
    res = gitrecords.push(root, remote)
    if res.code != 0:
        raise GitStateError(
            f"could not push the run records to {remote}: {redact((res.err or res.out).strip())}",
            "Check that the remote exists and that you may push to it.",
        )
    return len(refs)


def runs_pull(root: Path | str = ".", remote: str = "origin") -> int:
    """Fetch the run records of `remote` (`mlops runs pull`); how many were new here."""
    from mlops.adapters.git import redact
    from mlops.errors import GitStateError
    from mlops.pipeline import gitrecords
    from mlops.pipeline.records import RunStore

    root = Path(root).resolve()
    res = gitrecords.fetch(root, remote)
    if res.code != 0:
        raise GitStateError(
            f"could not fetch the run records from {remote}: "
            f"{redact((res.err or res.out).strip())}",
            "Check that the remote exists and that you may read it.",
        )
    return RunStore(root).sync()

"""Reading the prediction log segments every host shipped to storage (no JSON is parsed).

Servers ship their log as Arrow IPC files (`mlops.serve.segments`; format in
docs/architecture.md, "Prediction log segments"):

    <url>/logs/<host>/<UTC start>-<writer>.predictions.arrow
    <url>/logs/<host>/<UTC start>-<writer>.errors.arrow
    <url>/feedback/<host>/<UTC start>-<writer>.feedback.arrow

`read_segments(url)` lists them all (one listing per prefix), fetches them concurrently (an
object store) or memory-maps them (a local directory), checks each one's columns, and returns
the same three tables as the JSON log's reader (`mlops.monitor.logdata.LogColumns`), so the
checks do not know where the log came from. A segment that is not a readable Arrow file of the
expected columns is skipped and named in the notes.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from mlops.errors import UsageError
from mlops.monitor.logdata import LogColumns, concat, parse_bytes

TABLES = ("predictions", "errors", "feedback")
# the columns every segment of a table must have, and the kind of each
REQUIRED = {
    "predictions": {"ts": "float", "request_id": "text", "row": "int", "version": "text"},
    "errors": {"ts": "float", "status": "int", "endpoint": "text"},
    "feedback": {"ts": "float", "request_id": "text", "row": "int", "label": "any"},
}
EXTRAS = {"s3": "s3", "gs": "gs", "gcs": "gs", "az": "azure", "abfs": "azure", "azure": "azure"}


def is_url(location: str) -> bool:
    """Whether `location` names a storage URL (`scheme://…`) rather than a local path."""
    return "://" in location and not location.startswith("file://")


def check_url(url: str) -> str:
    """`url` made usable: a local path made absolute; a URL whose filesystem is installed.

    Raises `UsageError` for an unknown scheme or a filesystem package that is missing."""
    if not is_url(url):
        return str(Path(url.removeprefix("file://")).absolute())
    import fsspec

    scheme = url.split("://", 1)[0]
    try:
        fsspec.get_filesystem_class(scheme)
    except ValueError:
        raise UsageError(
            f"unknown storage scheme {scheme!r} in {url}",
            "Use a directory, or s3:// (gs://, az:// where their fsspec filesystem is installed).",
        ) from None
    except ImportError:
        extra = EXTRAS.get(scheme)
        how = f"the `{extra}` extra of mlops" if extra == "s3" else f"the fsspec {scheme} package"
        raise UsageError(
            f"{url}: the filesystem for {scheme}:// is not installed",
            f"Install {how} (in a checkout: pip install -e '.[{extra or scheme}]').",
        ) from None
    return url.rstrip("/")


def _kind(t: Any) -> str:
    import pyarrow as pa

    if pa.types.is_dictionary(t):
        t = t.value_type
    if pa.types.is_floating(t):
        return "float"
    if pa.types.is_integer(t):
        return "int"
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return "text"
    return "other"


CANONICAL = {"ts": "float64", "latency_ms": "float64", "confidence": "float64", "row": "int32",
             "n": "int32", "status": "int32"}  # fmt: skip


def _checked(table: Any, kind: str) -> tuple[Any, str | None]:
    """The table with its known columns in their usual types, or why it cannot be used."""
    import pyarrow as pa

    for name, want in REQUIRED[kind].items():
        if name not in table.column_names:
            return table, f"no column {name!r}"
        got = _kind(table.schema.field(name).type)
        if want != "any" and got != want and not (want == "float" and got == "int"):
            return table, f"column {name!r} is {table.schema.field(name).type}, not {want}"
    for f in table.schema:
        if _kind(f.type) == "other" and not pa.types.is_null(f.type):
            return table, f"column {f.name!r} is {f.type}, not a number or text"
    try:
        for name, type_name in CANONICAL.items():
            if name in table.column_names:
                i = table.column_names.index(name)
                col = table.column(i).cast(getattr(pa, type_name)())
                table = table.set_column(i, name, col)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        return table, f"bad values: {str(exc)[:80]}"
    import pyarrow.compute as pc

    ts = table.column("ts")
    if table.num_rows and not pc.all(pc.is_finite(pc.fill_null(ts, float("nan")))).as_py():
        return table, "a ts that is missing or not a finite number"
    return table, None


def _meta(table: Any) -> dict[str, Any]:
    raw = (table.schema.metadata or {}).get(b"mlops")
    try:
        meta = json.loads(raw) if raw else {}
    except ValueError:
        return {}
    return meta if isinstance(meta, dict) else {}


def _count(meta: dict[str, Any], key: str) -> int:
    v = meta.get(key)
    return v if type(v) is int and 0 <= v < 1 << 40 else 0


def list_segments(url: str) -> dict[str, list[str]]:
    """The segment paths under `url`, by table, oldest first (names start with a UTC time)."""
    import fsspec

    fs, root = fsspec.core.url_to_fs(url, skip_instance_cache=True)
    root = root.rstrip("/")
    found: list[str] = []
    for top in ("logs", "feedback"):
        try:  # one recursive listing per prefix (a glob lists every host's folder apart)
            found += fs.find(f"{root}/{top}")
        except (FileNotFoundError, NotADirectoryError):
            continue
    return _classify(root, found)


def _classify(root: str, found: list[str]) -> dict[str, list[str]]:
    """Paths `<root>/<logs|feedback>/<host>/<name>.<table>.arrow` by table, oldest first."""
    out: dict[str, list[str]] = {t: [] for t in TABLES}
    for path in found:
        parts = path.rsplit("/", 3)[-3:]
        if (
            len(parts) != 3
            or parts[0] not in ("logs", "feedback")
            or path != "/".join([root, *parts])
        ):  # exactly <root>/<logs|feedback>/<host>/<name>
            continue
        name = parts[2]
        if name.startswith(".") or not name.endswith(".arrow"):
            continue  # a local upload's temporary file
        table = name.rsplit(".", 2)[-2] if name.count(".") >= 2 else ""
        if table in TABLES and (parts[0] == "feedback") == (table == "feedback"):
            out[table].append(path)
    for paths in out.values():
        paths.sort(key=lambda p: (p.rsplit("/", 1)[-1], p))
    return out


def _arrow_s3(url: str) -> tuple[dict[str, list[str]], dict[str, Any]] | None:
    """Listing and bytes of the segments under an `s3://` URL through pyarrow's own S3
    filesystem (C++: listing, and fetching on its threads without fsspec's event loop, about
    twice as fast; buffers Arrow allocated, so the checks read them without copies). Credentials,
    region and endpoint (`AWS_ENDPOINT_URL`) come from the environment, as for s3fs. None where
    pyarrow has no S3 support, so the caller reads through fsspec."""
    import pyarrow as pa

    try:
        from pyarrow import fs as pafs

        endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        if endpoint:
            scheme, _, host = endpoint.partition("://")
            s3 = pafs.S3FileSystem(endpoint_override=host.rstrip("/"), scheme=scheme)
        else:
            s3 = pafs.S3FileSystem()
    except (ImportError, AttributeError, pa.ArrowException, OSError):
        return None
    root = url.removeprefix("s3://").rstrip("/")
    found: list[str] = []
    for top in ("logs", "feedback"):
        selector = pafs.FileSelector(f"{root}/{top}", recursive=True, allow_not_found=True)
        try:
            infos = s3.get_file_info(selector)
        except FileNotFoundError:
            continue
        found += [i.path for i in infos if i.type == pafs.FileType.File]
    listed = _classify(root, found)

    def get(path: str) -> Any:
        try:
            with s3.open_input_stream(path) as fh:
                return fh.read_buffer()
        except (OSError, pa.ArrowException) as exc:
            return exc

    from concurrent.futures import ThreadPoolExecutor

    every = [p for paths in listed.values() for p in paths]
    with ThreadPoolExecutor(16) as pool:  # network waits, not CPU: the calls release the GIL
        return listed, dict(zip(every, pool.map(get, every), strict=True))


def _fetch(fs: Any, paths: list[str]) -> dict[str, Any]:
    """Each segment's bytes: memory-mapped on a local disk, fetched concurrently otherwise."""
    import pyarrow as pa

    protocols = (fs.protocol,) if isinstance(fs.protocol, str) else tuple(fs.protocol)
    if "file" in protocols:
        out: dict[str, Any] = {}
        for p in paths:
            try:
                out[p] = pa.memory_map(p)
            except OSError as exc:
                out[p] = exc
        return out
    if not paths:
        return {}
    got = fs.cat(paths, on_error="return")
    return {p: got.get(p, FileNotFoundError(p)) for p in paths}


def read_segments(
    url: str, since: float | None = None, *, native_s3: bool | None = None
) -> LogColumns:
    """Every host's shipped log under `url` with `ts >= since` (feedback whenever it came).

    `s3://` is read through pyarrow's own S3 filesystem (the faster reader in the side-by-side
    of docs/benchmarks.md, session 4), and through fsspec (s3fs) when pyarrow cannot list the
    URL (no S3 support, or a bucket or credentials only s3fs finds); every other scheme through
    fsspec. The tables are the same either way. `native_s3=True` insists on pyarrow's reader,
    `False` on fsspec's."""
    from mlops.monitor.memory import small_pages

    with small_pages():
        return _read_segments(url, since, native_s3=native_s3)


def _read_segments(url: str, since: float | None, *, native_s3: bool | None) -> LogColumns:
    import fsspec
    import pyarrow as pa
    import pyarrow.compute as pc

    t0 = time.perf_counter()
    out = LogColumns(pa.table({}), pa.table({}), pa.table({}), url)
    arrow = None
    if native_s3 is not False and url.startswith("s3://"):
        try:
            arrow = _arrow_s3(url)
        except (OSError, pa.ArrowException):
            if native_s3:
                raise
            arrow = None  # fsspec's reader below
    if arrow is not None:
        listed, fetched = arrow
    else:
        fs, _ = fsspec.core.url_to_fs(url, skip_instance_cache=True)
        listed = list_segments(url)
        fetched = _fetch(fs, [p for paths in listed.values() for p in paths])
    every = [p for paths in listed.values() for p in paths]
    tables: dict[str, list[Any]] = {t: [] for t in TABLES}
    skipped: list[str] = []
    hosts: set[str] = set()
    for kind in TABLES:
        for path in listed[kind]:
            data = fetched.get(path)
            name = "/".join(path.rsplit("/", 3)[-3:])
            try:
                if isinstance(data, BaseException) or data is None:
                    raise OSError(str(data))
                if isinstance(data, pa.MemoryMappedFile | pa.Buffer):
                    source = data
                else:
                    source = pa.py_buffer(data)
                table = pa.ipc.open_file(source).read_all()
                size = source.size() if isinstance(source, pa.MemoryMappedFile) else source.size
            except (OSError, pa.ArrowException) as exc:
                skipped.append(f"{name} ({type(exc).__name__})")
                continue
            table, problem = _checked(table, kind)
            if problem:
                skipped.append(f"{name} ({problem})")
                continue
            meta = _meta(table)
            if kind == "predictions":
                out.lines += _count(meta, "lines")
                out.bad += _count(meta, "bad")
                out.unknown += _count(meta, "unknown")
            out.files += 1
            out.bytes_indexed += size
            hosts.add(path.rsplit("/", 2)[-2])
            tables[kind].append(table)
    empty = parse_bytes(b"")
    for kind in TABLES:
        parts = tables[kind]
        setattr(out, kind, concat(parts) if parts else getattr(empty, kind))
    if since is not None:
        out.predictions = out.predictions.filter(pc.greater_equal(out.predictions["ts"], since))
        out.errors = out.errors.filter(pc.greater_equal(out.errors["ts"], since))
    if every:
        out.notes.append(f"{out.files} log segment(s) from {len(hosts)} host(s) at {url}")
    if skipped:
        shown = ", ".join(skipped[:5]) + (
            f" and {len(skipped) - 5} more" if len(skipped) > 5 else ""
        )
        out.notes.append(f"{len(skipped)} log segment(s) skipped, unreadable: {shown}")
    out.seconds = time.perf_counter() - t0
    return out


def has_segments(url: str) -> bool:
    """Whether anything was shipped under `url` (a `logs/` or `feedback/` prefix exists)."""
    import fsspec

    fs, root = fsspec.core.url_to_fs(url, skip_instance_cache=True)
    root = root.rstrip("/")
    try:
        return any(fs.exists(f"{root}/{top}") for top in ("logs", "feedback"))
    except OSError:
        return False


def combine(a: LogColumns, b: LogColumns) -> LogColumns:
    """One log from two (a JSON log directory and shipped segments)."""
    out = LogColumns(
        concat([a.predictions, b.predictions]),
        concat([a.feedback, b.feedback]),
        concat([a.errors, b.errors]),
        f"{a.directory} + {b.directory}",
    )
    for key in ("files", "lines", "bad", "unknown", "bytes_parsed", "bytes_indexed", "seconds"):
        setattr(out, key, getattr(a, key) + getattr(b, key))
    out.notes = [*a.notes, *b.notes]
    return out

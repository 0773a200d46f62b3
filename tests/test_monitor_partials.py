"""The report from cached per-chunk partials is the report from the rows, to the byte; a cache
that was tampered with or truncated is ignored and rewritten (mlops.monitor.partials)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mlops.config.models import MonitoringSpec
from mlops.monitor import partials
from mlops.monitor.assemble import percentile_counts
from mlops.monitor.checks import LiveModel, analyse
from mlops.monitor.logdata import read_columns
from mlops.monitor.segments import combine, read_segments
from mlops.monitor.window import Window
from mlops.serve.segments import convert, segment_paths
from tests.monitor_helpers import group

SPEC = MonitoringSpec.model_validate(
    {
        "min_rows": 30,
        "drift": {"method": "jensenshannon"},
        "performance": {"metric": "accuracy", "min": 0.5, "min_labels": 10},
    }
)
T0 = 1_700_000_000.0


@pytest.fixture(scope="module")
def live(bundle: Path) -> LiveModel:
    return LiveModel.read(bundle, "v2")


def write(
    path: Path, start: int, n: int, *, version: str = "v2", seed: int = 0, feedback: bool = True
) -> None:
    """`n` one-row requests (and feedback for every third, an error every 25th) appended to
    a log file in the serving format, 37 s apart from request `start` on."""
    rows, labels = group(None, n=n, seed=seed + start)
    rng = np.random.default_rng(start)
    classes = ["Adelie", "Chinstrap", "Gentoo"]
    lines = []
    for i, (row, label) in enumerate(zip(rows, labels, strict=True)):
        k = start + i
        ts, rid = T0 + 37.0 * k, f"r{k}"
        pred = label if rng.random() < 0.8 else classes[int(rng.integers(3))]
        lines.append(
            {"kind": "prediction", "ts": ts, "request_id": rid, "model": "m",
             "version": version, "endpoint": "invocations", "n": 1,
             "inputs": {c: [v] for c, v in row.items()}, "predictions": [pred],
             "latency_ms": round(float(rng.gamma(2.0, 0.2)), 2), "classes": classes,
             "probabilities": [[0.7, 0.2, 0.1]]}
        )  # fmt: skip
        if k % 3 == 0 and feedback:
            lines.append({"kind": "feedback", "ts": ts + 5, "request_id": rid, "labels": [label]})
        if k % 25 == 0:
            lines.append(
                {"kind": "error", "ts": ts, "request_id": rid + "x", "endpoint": "invocations",
                 "status": 422, "error": "invalid_input", "version": version,
                 "latency_ms": 0.1, "fields": {"island": 1}}
            )  # fmt: skip
    with path.open("a", encoding="utf-8") as fh:
        fh.writelines(json.dumps(x) + "\n" for x in lines)


def text(columns, live: LiveModel, window: Window, **kw) -> str:
    report = analyse(columns, live, SPEC, window, env="staging", previous="v1", **kw)
    d = report.to_dict()
    d["seconds"] = 0
    if isinstance(d.get("log"), dict):  # the read's time (compared across reads of a log)
        d["log"]["seconds"] = 0
    assert report.series.get("drift_js"), "the partial path ran"
    return json.dumps(d)


WHOLE = Window(None, T0 + 10**7, "whole log")


def same(columns, live: LiveModel, cache: Path, window: Window = WHOLE) -> str:
    """The report without cache == from the rows == with the cache (writing, then reading)."""
    fresh = text(columns, live, window)
    # the rows give the same report (under 200,000 rows the drift-over-time picture of the
    # rows is not drawn from a sample either)
    rows = analyse(columns, live, SPEC, window, env="staging", previous="v1", partials=False)
    want = rows.to_dict()
    want["seconds"] = 0
    if isinstance(want.get("log"), dict):
        want["log"]["seconds"] = 0
    assert json.dumps(want) == fresh
    assert text(columns, live, window, cache=cache) == fresh  # writes or reads the cache
    assert text(columns, live, window, cache=cache) == fresh  # reads it
    return fresh


def mark(cache: Path) -> None:
    """A key `compute` never writes in every cached chunk partial: it survives a run only in a
    partial that was kept (its performance part refreshed), not recomputed from the rows."""
    store = partials.PartialCache(cache)
    for p in cache.glob("*.json"):
        if not p.name.startswith("fb-"):
            doc = store.get(p.stem)
            assert doc is not None
            doc["kept"] = True
            store.put(p.stem, doc)


def marked(cache: Path) -> list[bool]:
    store = partials.PartialCache(cache)
    docs = [store.get(p.stem) for p in cache.glob("*.json") if not p.name.startswith("fb-")]
    return [bool(d and d.get("kept")) for d in docs]


def feedback(path: Path, labels: dict[int, str], at: float) -> None:
    """Feedback lines (request number → label) in a log file of their own, at time `at` on."""
    lines = [
        {"kind": "feedback", "ts": at + i, "request_id": f"r{k}", "labels": [lab]}
        for i, (k, lab) in enumerate(labels.items())
    ]
    path.write_text("".join(json.dumps(x) + "\n" for x in lines), encoding="utf-8")


def test_cached_partials_give_the_same_report_as_a_growing_log(tmp_path: Path, live):
    log = tmp_path / "log"
    log.mkdir()
    write(log / "20231114T000000.000000-a.jsonl", 0, 400, version="v1")
    write(log / "20231114T050000.000000-a.jsonl", 400, 400)
    cache = tmp_path / "cache"

    def both(columns, window: Window = WHOLE) -> str:
        return same(columns, live, cache, window)

    first = both(read_columns(log))
    assert len(list(cache.glob("*.json"))) == 3  # two chunks and the feedback's labels
    # rows appended to the second file (its index chunk changes), a new file, late feedback
    write(log / "20231114T050000.000000-a.jsonl", 800, 200)
    write(log / "20231114T100000.000000-a.jsonl", 1000, 300)
    grown = both(read_columns(log))
    assert grown != first and json.loads(grown)["traffic"]["rows"] == 1300
    # a segment another host shipped joins (new chunks, older times than some rows)
    other = tmp_path / "other"
    other.mkdir()
    write(other / "20231114T020000.000000-b.jsonl", 5000, 300, seed=3)
    store = tmp_path / "store"
    local = segment_paths(str(store), "host-b", "20231114T020000.000000-b")
    for kind, data in convert(other / "20231114T020000.000000-b.jsonl", "host-b").items():
        Path(local[kind]).parent.mkdir(parents=True, exist_ok=True)
        Path(local[kind]).write_bytes(data)
    shipped = both(combine(read_columns(log), read_segments(str(store))))
    assert json.loads(shipped)["traffic"]["rows"] == 1600
    # a window that cuts the first chunk in half (its partial from the rows in the window)
    half = Window(T0 + 37.0 * 200, T0 + 37.0 * 1100, "cut")
    cut = both(read_columns(log), half)
    assert json.loads(cut)["traffic"]["rows"] == 901
    # feedback changes, the predictions do not: every cached partial is kept, only its
    # performance part recomputed (the marks survive), and the report is still the rows'
    before = both(read_columns(log))
    mark(cache)
    late = log / "20231114T150000.000000-a.jsonl"
    # labels for requests not labelled yet, in old and new chunks
    feedback(late, {1: "Gentoo", 2: "Adelie", 401: "Chinstrap", 1001: "Gentoo"}, T0 + 10**6)
    added = both(read_columns(log))
    # (the feedback's file is a chunk of no predictions, new: the three others are kept)
    assert added != before and marked(cache).count(True) == 3
    got = json.loads(added)["series"]["labelled"]
    # (requests 401 and 1001 are the live version's: 1 and 2 are v1's)
    assert sum(got) == sum(json.loads(before)["series"]["labelled"]) + 2
    # a label changed for requests labelled already (the latest wins)
    feedback(late, {0: "Chinstrap", 3: "Chinstrap", 402: "Adelie"}, T0 + 2 * 10**6)
    changed = both(read_columns(log))
    assert changed not in (before, added) and marked(cache).count(True) == 3
    # the late feedback removed: the report before it, from the kept partials
    late.unlink()
    assert both(read_columns(log)) == before and marked(cache) == [True] * 3


def test_feedback_appearing_and_disappearing_keeps_the_cached_partials(tmp_path: Path, live):
    log = tmp_path / "log"
    log.mkdir()
    write(log / "20231114T000000.000000-a.jsonl", 0, 300, feedback=False)
    write(log / "20231114T040000.000000-a.jsonl", 300, 300, feedback=False)
    cache = tmp_path / "cache"
    read_columns(log)  # the index built: every report below reads the log the same way
    none = same(read_columns(log), live, cache)
    mark(cache)
    late = log / "20231114T150000.000000-a.jsonl"
    feedback(late, {k: "Adelie" for k in range(0, 600, 2)}, T0 + 10**6)
    some = same(read_columns(log), live, cache)
    assert some != none and json.loads(some)["performance"] != json.loads(none)["performance"]
    assert marked(cache).count(True) == 2
    late.unlink()  # no feedback at all any more: no performance part
    assert same(read_columns(log), live, cache) == none and marked(cache) == [True] * 2


def test_a_tampered_or_truncated_cache_is_ignored_and_rewritten(tmp_path: Path, live):
    log = tmp_path / "log"
    log.mkdir()
    write(log / "20231114T000000.000000-a.jsonl", 0, 300)
    write(log / "20231114T040000.000000-a.jsonl", 300, 300)
    cache = tmp_path / "cache"
    columns = read_columns(log)
    fresh = text(columns, live, WHOLE)
    text(columns, live, WHOLE, cache=cache)
    files = sorted(cache.glob("*.json"))
    assert len(files) == 3
    chunk_files = [p for p in files if not p.name.startswith("fb-")]
    # a count changed without its checksum; a truncated file; not JSON; another key's file
    head, body = chunk_files[0].read_bytes().split(b"\n", 1)
    doc = json.loads(body)
    doc["rows"] += 1000
    doc["series"]["rows"][0] += 1000
    chunk_files[0].write_bytes(head + b"\n" + json.dumps(doc, separators=(",", ":")).encode())
    data = chunk_files[1].read_bytes()
    chunk_files[1].write_bytes(data[: len(data) // 2])
    fb = next(p for p in files if p.name.startswith("fb-"))
    fb.write_bytes(b"\x00garbage")
    assert text(columns, live, WHOLE, cache=cache) == fresh
    store = partials.PartialCache(cache)
    assert all(store.get(p.stem) is not None for p in files)  # rewritten, valid again
    # a valid file under another chunk's name (its own key inside) is refused too
    chunk_files[0].write_bytes(chunk_files[1].read_bytes())
    assert store.get(chunk_files[0].stem) is None and store.rejected == 1
    assert text(columns, live, WHOLE, cache=cache) == fresh
    # well-formed, with its checksum right, but not a partial of this setup (a list too short)
    head, body = chunk_files[0].read_bytes().split(b"\n", 1)
    doc = json.loads(body)
    doc["series"]["rows"][-1] = -1
    partials.PartialCache(cache).put(chunk_files[0].stem, doc)
    assert text(columns, live, WHOLE, cache=cache) == fresh
    # only the feedback's label list lost: the labels are joined again
    fb.unlink()
    assert text(columns, live, WHOLE, cache=cache) == fresh and fb.exists()
    # an oversized file is not read
    with chunk_files[1].open("ab") as fh:
        fh.truncate(partials.MAX_FILE_BYTES + 1)
    assert store.get(chunk_files[1].stem) is None
    assert text(columns, live, WHOLE, cache=cache) == fresh


def test_percentiles_from_counts_are_numpys():
    rng = np.random.default_rng(5)
    for n in (1, 2, 3, 7, 100, 1001):
        x = rng.gamma(2.0, 0.2, n).round(int(rng.integers(1, 4)))
        values, counts = np.unique(x, return_counts=True)
        got = percentile_counts(values.tolist(), counts.tolist())
        assert got == np.percentile(x, (50, 95, 99)).tolist()


def test_the_latest_label_of_a_request_wins():
    import pyarrow as pa

    from mlops.monitor.performance import _labelled

    pred = pa.table({"request_id": ["a", "b", "c", "d"], "row": [0, 0, 0, 0]})
    fb = pa.table(
        {
            "ts": [3.0, 1.0, 2.0, 5.0, 4.0],  # not in time order in the log
            "request_id": ["a", "a", "b", "a", "c"],
            "row": [0, 0, 0, 0, 0],
            "label": ["second", "first", "only", "third", "c's"],
        }
    )
    idx, labels = _labelled(pred, fb)
    got = [None if i < 0 else labels[int(i)].as_py() for i in idx]
    assert got == ["third", "only", "c's", None]
    # requests of several rows: the key is (request id, row)
    pred2 = pa.table({"request_id": ["a", "a", "b"], "row": [0, 1, 0]})
    fb2 = fb.set_column(2, "row", pa.array([1, 0, 0, 0, 0], pa.int32()))
    idx, labels = _labelled(pred2, fb2)
    got = [None if i < 0 else labels[int(i)].as_py() for i in idx]
    assert got == ["third", "second", "only"]

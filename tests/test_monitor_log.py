"""Reading the prediction log into columns: both parsers, bad input, the incremental index."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from mlops.monitor import logdata
from mlops.monitor.logdata import INDEX_DIR, read_columns
from mlops.serve import logarrow, logparse
from mlops.serve.log import log_files
from tests.monitor_helpers import group, serve_rows


@pytest.fixture(scope="module")
def served(bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A log written by the real service: one-row and three-row requests, a missing value,
    feedback, and a refused request."""
    log = tmp_path_factory.mktemp("log")
    rows, labels = group("Dream", n=30)
    rows[3]["sex"] = None
    serve_rows(bundle, log, rows[:12], labels[:12])
    serve_rows(bundle, log, rows[12:], labels[12:], batch=3, version="v2")
    serve_rows(bundle, log, [dict(rows[0], island="Mars")])  # refused: unknown island
    return log


def _plain(table) -> list[dict]:
    import pyarrow as pa

    cols = {}
    for name in table.column_names:
        col = table.column(name)
        if pa.types.is_dictionary(col.type):
            col = col.cast(col.type.value_type)
        cols[name] = col
    return pa.table(cols).to_pylist()


def _all_bytes(log: Path) -> bytes:
    return b"".join(p.read_bytes() for p in log_files(log))


def test_arrow_and_entry_by_entry_parsers_read_the_same(served: Path):
    data = _all_bytes(served)
    fast = logarrow._parse_arrow(data)
    careful = logparse._parse_objects(data)
    assert fast is not None  # a well-formed log takes the fast path
    for name in ("predictions", "feedback", "errors"):
        assert _plain(getattr(fast, name)) == _plain(getattr(careful, name)), name
    assert (fast.lines, fast.bad, fast.unknown) == (careful.lines, careful.bad, careful.unknown)
    rows = _plain(fast.predictions)
    assert len(rows) == 30 and {r["version"] for r in rows} == {"v1", "v2"}
    three = [r for r in rows if r["n"] == 3]
    assert len(three) == 18 and [r["row"] for r in three[:3]] == [0, 1, 2]
    assert rows[3]["in.sex"] is None and rows[3]["in.island"] == "Dream"
    assert all(0.3 < r["confidence"] <= 1 for r in rows)
    assert len(_plain(fast.feedback)) == 30
    (err,) = _plain(fast.errors)
    assert err["status"] == 422 and json.loads(err["fields"]) == {"island": 1}


def test_bad_lines_are_skipped_and_counted_and_a_partial_line_waits(tmp_path: Path, served):
    good = _all_bytes(served).splitlines()[:5]
    bad = [
        b"not json at all",
        b"[1, 2, 3]",
        b'{"kind": "prediction", "ts": 1.0, "n": 1, "predictions": ["Adelie"],'
        b' "inputs": {"island": ["Dream", "Biscoe"]}}',  # inputs longer than the predictions
        b'{"kind": "prediction", "ts": "yesterday", "predictions": ["Adelie"], "inputs": {}}',
        b'{"kind": "feedback", "ts": 2.0, "labels": "Adelie", "request_id": "x"}',
        b'{"kind": "heartbeat", "ts": 3.0}',
        b"\x00\xff\xfe binary",
    ]
    partial = good[0][: len(good[0]) // 2]
    log = tmp_path / "log"
    log.mkdir()
    f = log / "20240101T000000.000000-1.jsonl"
    f.write_bytes(b"\n".join(good[:2] + bad + good[2:]) + b"\n" + partial)
    cols = read_columns(log)
    assert cols.predictions.num_rows + cols.feedback.num_rows + cols.errors.num_rows >= 1
    assert cols.bad == 6 and cols.unknown == 1  # the heartbeat is not an error
    assert any("6 log line(s) skipped" in n for n in cols.notes)
    waiting = [n for n in cols.notes if "incomplete line" in n]
    assert waiting == [
        f"{f.name} ends with an incomplete line ({len(partial)} bytes without a newline): left "
        "for the next read (a server still writing it), not counted"
    ]
    before = cols.predictions.num_rows + cols.feedback.num_rows
    with open(f, "ab") as fh:  # the writer finishes its line
        fh.write(good[0][len(partial) :] + b"\n")
    again = read_columns(log)
    assert again.bytes_parsed == len(good[0]) + 1  # only the completed line
    assert again.predictions.num_rows + again.feedback.num_rows == before + 1
    assert again.bad == 6
    assert not [n for n in again.notes if "incomplete line" in n]


def test_an_entry_whose_n_disagrees_with_its_rows_is_skipped(tmp_path: Path, served):
    good = _all_bytes(served).splitlines()[:5]
    liar = (
        b'{"kind": "prediction", "ts": 1.0, "request_id": "r", "version": "v1", "n": 2,'
        b' "inputs": {"island": ["Dream"]}, "predictions": ["Adelie"]}'
    )
    data = b"\n".join([*good, liar]) + b"\n"
    assert logarrow._parse_arrow(data) is None  # the fast path leaves it to the careful one
    careful = logparse._parse_objects(data)
    assert careful.bad == 1
    assert "r" not in careful.predictions.column("request_id").to_pylist()
    fine = logparse._parse_objects(b"\n".join(good) + b"\n")
    assert careful.predictions.num_rows == fine.predictions.num_rows


def test_files_that_are_not_logs_are_named(tmp_path: Path, served):
    log = tmp_path / "log"
    log.mkdir()
    (log / "20240101T000000.000000-1.jsonl").write_bytes(_all_bytes(served))
    (log / "20231231T000000.000000-1.jsonl.gz").write_bytes(b"\x1f\x8b compressed")
    cols = read_columns(log)
    assert cols.predictions.num_rows == 30
    (note,) = [n for n in cols.notes if "not read" in n]
    assert "20231231T000000.000000-1.jsonl.gz" in note and "only *.jsonl" in note
    assert not any(INDEX_DIR in n for n in read_columns(log).notes)  # the index is not named


def test_the_index_is_reused_then_extended(tmp_path: Path, bundle: Path):
    log = tmp_path / "log"
    rows, labels = group("Biscoe", n=20)
    serve_rows(bundle, log, rows[:10], labels[:10])
    (f,) = log_files(log)
    first = read_columns(log)
    assert first.bytes_parsed == f.stat().st_size and first.bytes_indexed == 0
    assert sorted(p.name.split(".jsonl.")[1] for p in (log / INDEX_DIR).iterdir()) == [
        "errors.arrow",
        "feedback.arrow",
        "json",
        "predictions.arrow",
    ]
    second = read_columns(log)
    assert second.bytes_parsed == 0 and second.bytes_indexed == f.stat().st_size
    assert _plain(second.predictions) == _plain(first.predictions)
    size = f.stat().st_size
    extra = tmp_path / "more"
    serve_rows(bundle, extra, rows[10:], labels[10:])
    with open(f, "ab") as fh:  # the same file grows (the writer appends to its open file)
        fh.write(_all_bytes(extra))
    third = read_columns(log)
    assert third.bytes_parsed == f.stat().st_size - size
    assert third.predictions.num_rows == 20 and third.feedback.num_rows == 20


def test_a_replaced_or_removed_file_is_read_again_or_forgotten(tmp_path: Path, served: Path):
    log = tmp_path / "log"
    log.mkdir()
    data = _all_bytes(served)
    a = log / "20240101T000000.000000-1.jsonl"
    b = log / "20240101T000001.000000-1.jsonl"
    a.write_bytes(data)
    b.write_bytes(data)
    assert read_columns(log).predictions.num_rows == 60
    tmp = log / "new.tmp"
    tmp.write_bytes(b"\n".join(data.splitlines()[:4]) + b"\n")
    os.replace(tmp, a)  # another inode: the index no longer describes it
    b.unlink()  # pruned by the writer: its index goes too
    cols = read_columns(log)
    assert cols.bytes_parsed == a.stat().st_size
    assert cols.files == 1 and not list((log / INDEX_DIR).glob(b.name + "*"))


def test_an_index_that_cannot_be_written_only_costs_speed(tmp_path: Path, served: Path):
    log = tmp_path / "log"
    log.mkdir()
    (log / "20240101T000000.000000-1.jsonl").write_bytes(_all_bytes(served))
    (log / INDEX_DIR).write_text("a file where the index directory would go")
    cols = read_columns(log)
    assert cols.predictions.num_rows == 30
    assert any("could not be written" in n for n in cols.notes)
    assert read_columns(log).bytes_parsed > 0  # parsed again each time, still correct


def test_empty_missing_and_garbage_logs(tmp_path: Path):
    missing = read_columns(tmp_path / "nowhere")
    assert missing.predictions.num_rows == 0 and "no prediction log" in missing.notes[0]
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "20240101T000000.000000-1.jsonl").write_bytes(b"")
    cols = read_columns(empty)
    assert (cols.predictions.num_rows, cols.lines, cols.bad) == (0, 0, 0)
    garbage = tmp_path / "garbage"
    garbage.mkdir()
    (garbage / "20240101T000000.000000-1.jsonl").write_bytes(os.urandom(5000) + b"\n" * 3)
    cols = read_columns(garbage)
    assert cols.predictions.num_rows == 0 and cols.bad >= 1


def test_the_two_process_parse_reads_what_one_process_reads(
    tmp_path: Path, served: Path, monkeypatch
):
    log = tmp_path / "log"
    log.mkdir()
    data = _all_bytes(served)
    for i in range(3):
        (log / f"20240101T00000{i}.000000-1.jsonl").write_bytes(data * 20)
    one = read_columns(log, use_index=False, parallel=False)
    monkeypatch.setattr(logdata, "PARALLEL_BYTES", 1)
    monkeypatch.setattr(logdata, "PIECE_BYTES", 40_000)  # several pieces per file
    two = read_columns(log, parallel=True)
    assert two.predictions.num_rows == one.predictions.num_rows == 3 * 20 * 30
    assert _plain(two.predictions) == _plain(one.predictions)
    assert _plain(two.feedback) == _plain(one.feedback)
    assert not two.notes  # the pieces' tables went into the index
    again = read_columns(log)
    assert again.bytes_parsed == 0 and _plain(again.predictions) == _plain(one.predictions)

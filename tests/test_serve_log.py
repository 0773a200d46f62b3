"""The prediction log: batched, bounded, rotated, shared safely by several writers."""

from __future__ import annotations

import json
from pathlib import Path

from mlops.serve.log import LogLimits, PredictionLog, iter_rows, log_files, read_log


def entry(i: int) -> dict:
    return {
        "kind": "prediction",
        "ts": 1000.0 + i,
        "request_id": f"r-{i}",
        "version": "v1",
        "n": 1,
        "inputs": {"x": [float(i)], "pad": ["p" * 100]},
        "predictions": [i % 3],
    }


def test_entries_are_written_in_batches_by_the_thread(tmp_path: Path):
    log = PredictionLog(tmp_path, LogLimits(flush_seconds=0.05))
    log.start()
    for i in range(10):
        assert log.add(entry(i))
    log.close()
    got = list(read_log(tmp_path))
    assert [e["request_id"] for e in got] == [f"r-{i}" for i in range(10)]
    assert log.written == 10 and log.dropped == 0
    assert len(log_files(tmp_path)) == 1


def test_rotation_keeps_the_directory_bounded(tmp_path: Path):
    limits = LogLimits(max_file_bytes=2_000, max_total_bytes=6_000, flush_seconds=3600)
    log = PredictionLog(tmp_path, limits)
    for i in range(300):
        log.add(entry(i))
        if i % 10 == 9:
            log.flush()  # what the thread does on its own schedule
    log.close()
    files = log_files(tmp_path)
    total = sum(f.stat().st_size for f in files)
    assert len(files) > 1
    # bounded: at most the limit plus the file that was open while pruning
    assert total <= limits.max_total_bytes + limits.max_file_bytes + 500
    kept = list(read_log(tmp_path))
    assert kept[-1]["request_id"] == "r-299"  # the newest survive, the oldest went
    assert kept[0]["request_id"] != "r-0"
    assert [e["ts"] for e in kept] == sorted(e["ts"] for e in kept)  # names sort by time


def test_a_full_queue_drops_and_counts_instead_of_growing(tmp_path: Path):
    log = PredictionLog(tmp_path, LogLimits(max_pending_rows=50, flush_seconds=3600))
    accepted = [log.add(entry(i), rows=10) for i in range(8)]
    assert accepted == [True] * 5 + [False] * 3
    assert log.dropped == 3
    log.flush()
    assert log.add(entry(99), rows=10)  # room again once written
    log.close()
    assert len(list(read_log(tmp_path))) == 6


def test_an_open_file_of_another_writer_is_never_pruned(tmp_path: Path):
    other = PredictionLog(tmp_path, LogLimits(flush_seconds=3600))
    other.add(entry(0))
    other.flush()  # `other` now holds its file open (and its flock)
    mine = PredictionLog(
        tmp_path, LogLimits(max_file_bytes=500, max_total_bytes=1, flush_seconds=3600)
    )
    for i in range(1, 20):
        mine.add(entry(i))
        mine.flush()
    assert other._path is not None and other._path.exists()
    other.add(entry(100))
    other.close()
    ids = [e["request_id"] for e in read_log(tmp_path)]
    assert "r-0" in ids and "r-100" in ids
    mine.close()
    # once closed, that file may go like any other
    last = PredictionLog(tmp_path, LogLimits(max_file_bytes=1, max_total_bytes=1))
    last.add(entry(200))
    last.flush()
    assert "r-0" not in [e["request_id"] for e in read_log(tmp_path)]
    last.close()


def test_readers_skip_a_partial_last_line_and_join_feedback(tmp_path: Path):
    lines = [
        {**entry(1), "n": 2, "inputs": {"x": [1.0, 2.0]}, "predictions": ["a", "b"]},
        {"kind": "feedback", "ts": 1.0, "request_id": "r-1", "labels": ["a", "c"]},
        entry(2),
    ]
    text = "\n".join(json.dumps(x) for x in lines) + "\n" + '{"kind": "predic'
    (tmp_path / "20240101T000000.000000-1.jsonl").write_text(text)
    entries = list(read_log(tmp_path))
    assert len(entries) == 3
    rows = list(iter_rows(entries))
    assert [(r["request_id"], r["row"], r["x"], r["prediction"], r.get("label")) for r in rows] == [
        ("r-1", 0, 1.0, "a", "a"),
        ("r-1", 1, 2.0, "b", "c"),
        ("r-2", 0, 2.0, 2, None),
    ]
    assert list(read_log(tmp_path, since=1001.5)) == [entries[2]]

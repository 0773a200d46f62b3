"""The prediction log shipped as columnar segments per host: written by the real service,
read back by `mlops monitor` with the same figures as the JSON log, and refused when damaged."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pyarrow as pa
import pytest

from mlops.errors import UsageError
from mlops.monitor.logdata import read_columns
from mlops.monitor.segments import check_url, list_segments, read_segments
from mlops.serve.log import PredictionLog, log_files
from mlops.serve.segments import Shipper, host_id
from tests.monitor_helpers import group, serve_rows
from tests.segment_helpers import compared, ship_rows


def _sorted(table: pa.Table, keys: list[str]) -> list[tuple]:
    cols = [table.column(k).to_pylist() for k in keys]
    return sorted(zip(*cols, strict=True), key=repr)


def test_two_hosts_shipped_read_as_the_same_log_as_json(tmp_path: Path, bundle: Path):
    rows, labels = group("Dream", n=120, seed=3)
    json_dir = tmp_path / "json"
    serve_rows(bundle, json_dir, rows, labels, version="v0.0.1", batch=3)
    store = tmp_path / "store"
    ship_rows(bundle, tmp_path / "spool-a", str(store), "a", rows[:60], labels[:60], batch=3)
    ship_rows(bundle, tmp_path / "spool-b", str(store), "b", rows[60:], labels[60:], batch=3)
    assert not log_files(tmp_path / "spool-a") and not log_files(tmp_path / "spool-b")
    listed = list_segments(str(store))
    assert {p.split("/")[-2] for p in listed["predictions"]} == {"a", "b"}
    assert len(listed["feedback"]) == 2 and all("/feedback/" in p for p in listed["feedback"])
    shipped = read_segments(str(store))
    local = read_columns(json_dir)
    assert shipped.predictions.num_rows == local.predictions.num_rows == 120
    assert shipped.feedback.num_rows == local.feedback.num_rows == 120
    assert shipped.lines == local.lines and shipped.bad == 0
    features = [c for c in local.predictions.column_names if c.startswith("in.")]
    keys = [*features, "prediction", "row", "n"]
    assert _sorted(shipped.predictions, keys) == _sorted(local.predictions, keys)
    assert shipped.predictions.schema.field("ts").type == pa.float64()
    assert "2 host(s)" in shipped.notes[0]


def test_monitor_over_segments_gives_the_figures_of_the_json_log(
    staged: Path, bundle: Path, tmp_path: Path, cli
):
    rows, labels = group("Dream", n=150, seed=5)
    serve_rows(bundle, staged / ".mlops/envs/staging/predictions", rows, labels, version="v0.0.1")
    store = tmp_path / "store"
    ship_rows(bundle, tmp_path / "sa", str(store), "host-a", rows[:70], labels[:70])
    ship_rows(bundle, tmp_path / "sb", str(store), "host-b", rows[70:], labels[70:])
    local = cli(["monitor", "--env", "staging", "--json"], cwd=staged)
    remote = cli(["monitor", "--env", "staging", "--json", "--log-url", str(store)], cwd=staged)
    assert local.exit_code == remote.exit_code == 7, remote.output
    a, b = json.loads(local.output), json.loads(remote.output)
    assert compared(a) == compared(b)
    assert b["traffic"]["rows"] == 150 and b["performance"]["online"]["labelled"] == 150
    assert b["log"]["bytes_parsed"] == 0  # nothing was parsed from JSON


def test_segments_under_the_target_are_read_beside_its_json_log(
    staged: Path, bundle: Path, tmp_path: Path, cli
):
    rows, labels = group(None, n=200, seed=7)
    target = staged / ".mlops/envs/staging"
    serve_rows(bundle, target / "predictions", rows[:100], labels[:100], version="v0.0.1")
    ship_rows(bundle, tmp_path / "spool", str(target), "pod-1", rows[100:], labels[100:])
    r = cli(["monitor", "--env", "staging", "--json"], cwd=staged)
    report = json.loads(r.output)
    assert report["traffic"]["rows"] == 200, report["log"]
    assert report["performance"]["online"]["labelled"] == 200


def test_refused_requests_are_shipped_as_an_errors_segment(tmp_path: Path, bundle: Path):
    rows, _ = group(None, n=10)
    ship_rows(bundle, tmp_path / "spool", str(tmp_path / "s"), "h", rows, refused=4)
    got = read_segments(str(tmp_path / "s"))
    assert got.errors.num_rows == 4 and set(got.errors["status"].to_pylist()) == {422}
    assert got.predictions.num_rows == 10


def test_damaged_segments_are_skipped_and_named(tmp_path: Path, bundle: Path):
    rows, labels = group(None, n=20)
    store = tmp_path / "store"
    ship_rows(bundle, tmp_path / "spool", str(store), "good", rows, labels)
    bad = store / "logs" / "evil"
    bad.mkdir(parents=True)
    (bad / "20240101T000000.000000-1.predictions.arrow").write_bytes(os.urandom(2000))
    wrong = pa.table({"ts": ["yesterday"], "request_id": ["x"], "row": [0], "version": ["v"]})
    with pa.ipc.new_file(bad / "20240101T000001.000000-1.predictions.arrow", wrong.schema) as w:
        w.write_table(wrong)
    missing = pa.table({"ts": [1.0]})
    with pa.ipc.new_file(bad / "20240101T000002.000000-1.errors.arrow", missing.schema) as w:
        w.write_table(missing)
    # a predictions segment placed under feedback/, and a stray file: not segments at all
    (store / "feedback" / "evil").mkdir(parents=True)
    (store / "feedback" / "evil" / "x.predictions.arrow").write_bytes(b"")
    (bad / "notes.txt").write_text("hello")
    got = read_segments(str(store))
    assert got.predictions.num_rows == 20 and got.feedback.num_rows == 20
    skipped = next(n for n in got.notes if "skipped" in n)
    assert "3 log segment(s) skipped" in skipped
    assert "column 'ts' is string, not float" in skipped and "no column 'status'" in skipped
    bogus_meta = pa.table({"ts": [1.0], "request_id": ["r"], "row": [0], "version": ["v"]})
    schema = bogus_meta.schema.with_metadata({b"mlops": b'{"lines": -5, "bad": "x"}'})
    with pa.ipc.new_file(bad / "20240101T000003.000000-1.predictions.arrow", schema) as w:
        w.write_table(bogus_meta.cast(schema))
    nan = pa.table({"ts": [float("nan")], "request_id": ["r"], "row": [0], "version": ["v"]})
    with pa.ipc.new_file(bad / "20240101T000004.000000-1.predictions.arrow", nan.schema) as w:
        w.write_table(nan)
    again = read_segments(str(store))
    assert again.lines == got.lines and again.bad == 0  # counts from metadata are checked
    assert again.predictions.num_rows == 21  # the bogus-metadata segment's one row, not NaN's
    assert "not a finite number" in next(n for n in again.notes if "skipped" in n)


def test_a_crash_leaves_the_spool_to_the_next_start(tmp_path: Path):
    spool, store = tmp_path / "spool", tmp_path / "store"
    log = PredictionLog(spool)
    log.start()
    entry = {
        "kind": "prediction",
        "ts": 1.0,
        "request_id": "r1",
        "version": "v1",
        "endpoint": "predict",
        "n": 1,
        "inputs": {"x": [1.5]},
        "predictions": ["A"],
    }
    log.add(entry)
    log.close()  # no shipper: as if the server had died before shipping
    (left,) = log_files(spool)
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where a directory should be")
    failing = Shipper(spool, str(blocked), "h")
    assert failing.ship(left) is False and left.exists() and failing.errors == 1
    shipper = Shipper(spool, str(store), "h")
    shipper.start()
    shipper.close()
    assert not left.exists()
    got = read_segments(str(store))
    assert got.predictions["request_id"].to_pylist() == ["r1"]
    shipper.ship(left)  # shipping twice (a crash between upload and delete) does not duplicate
    assert read_segments(str(store)).predictions.num_rows == 1


def test_bad_urls_and_host_ids_are_usage_errors(tmp_path: Path, cli, bundle: Path):
    with pytest.raises(UsageError, match="unknown storage scheme 'nope'"):
        check_url("nope://bucket/x")
    assert check_url(str(tmp_path / "x")) == str(tmp_path / "x")
    assert check_url("s3://bucket/prefix/") == "s3://bucket/prefix"
    for bad in ("../etc", "a/b", "", "-x", "x" * 64):
        with pytest.raises(UsageError, match="invalid host id"):
            host_id(bad or "..")
    r = cli(["serve", "--bundle", str(bundle), "--log-url", "nope://x"], cwd=tmp_path)
    assert r.exit_code == 2 and "unknown storage scheme" in r.output
    r = cli(["serve", "--bundle", str(bundle), "--log-url", "s", "--host-id", "a/b"], cwd=tmp_path)
    assert r.exit_code == 2 and "invalid host id" in r.output

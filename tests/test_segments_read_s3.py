"""Segments on S3 (moto's server on 127.0.0.1) read through pyarrow's own S3 filesystem give
the tables the fsspec reader gives; a damaged object is skipped and named by both."""

from __future__ import annotations

import moto  # noqa: F401  (part of the test install: scripts/test.sh)
import pyarrow as pa
import pytest
import s3fs  # noqa: F401  (the s3 extra)

from mlops.monitor.segments import read_segments
from tests.monitor_helpers import group
from tests.s3_helpers import moto_server
from tests.segment_helpers import ship_rows
from tests.serve_helpers import build_bundle

BUCKET = "mlops-read"


@pytest.fixture(scope="module")
def bucket(tmp_path_factory: pytest.TempPathFactory):
    """A bucket holding two hosts' segments shipped by the real service, plus a damaged one."""
    tmp = tmp_path_factory.mktemp("s3read")
    bundle = build_bundle(tmp / "bundle" / "penguins-classifier")
    rows, labels = group("Biscoe", n=90, seed=11)
    store = tmp / "store"
    ship_rows(bundle, tmp / "sa", str(store), "a", rows[:40], labels[:40], batch=2, refused=3)
    ship_rows(bundle, tmp / "sb", str(store), "b", rows[40:], labels[40:], batch=2)
    with moto_server() as endpoint, pytest.MonkeyPatch.context() as mp:
        mp.setenv("AWS_ACCESS_KEY_ID", "mlops-test-key")
        mp.setenv("AWS_SECRET_ACCESS_KEY", "mlops-test-secret")
        mp.setenv("AWS_DEFAULT_REGION", "us-east-1")
        mp.setenv("AWS_ENDPOINT_URL", endpoint)
        import boto3

        s3 = boto3.client("s3", endpoint_url=endpoint)
        s3.create_bucket(Bucket=BUCKET)
        for path in sorted(store.rglob("*.arrow")):
            key = "staging/" + path.relative_to(store).as_posix()
            s3.put_object(Bucket=BUCKET, Key=key, Body=path.read_bytes())
        bad = "staging/logs/c/20260101T000000.000000-c.predictions.arrow"
        s3.put_object(Bucket=BUCKET, Key=bad, Body=b"ARROW1 not really")
        s3.put_object(Bucket=BUCKET, Key="staging/logs/c/notes.txt", Body=b"not a segment")
        yield f"s3://{BUCKET}/staging", store


def _rows(table: pa.Table) -> list[tuple]:
    return sorted(
        zip(*(table.column(c).to_pylist() for c in table.column_names), strict=True), key=repr
    )


def test_native_and_fsspec_readers_agree(bucket):
    url, store = bucket
    native = read_segments(url, native_s3=True)
    via_fsspec = read_segments(url, native_s3=False)
    default = read_segments(url)  # pyarrow's reader, fsspec's when it cannot list
    local = read_segments(str(store))
    for kind in ("predictions", "feedback", "errors"):
        a, b, c, d = (getattr(x, kind) for x in (native, via_fsspec, local, default))
        assert a.num_rows == b.num_rows == c.num_rows == d.num_rows > 0
        assert a.column_names == b.column_names == d.column_names
        assert _rows(a) == _rows(b) == _rows(c.select(a.column_names)) == _rows(d)
    assert native.predictions.num_rows == 90 and native.errors.num_rows == 3
    assert native.files == via_fsspec.files == local.files
    assert native.lines == via_fsspec.lines == local.lines
    for got in (native, via_fsspec):
        skipped = [n for n in got.notes if "skipped" in n]
        assert skipped and "c/20260101T000000.000000-c.predictions.arrow" in skipped[0]
        assert "3 host(s)" not in got.notes[0] and "2 host(s)" in got.notes[0]


def test_native_reader_with_an_empty_prefix(bucket):
    url, _ = bucket
    got = read_segments(url.rsplit("/", 1)[0] + "/nothing-here", native_s3=True)
    assert got.predictions.num_rows == 0 and got.files == 0

"""A hypothesis fuzz of a real `mlops serve` process: `/invocations`, `/predict` and `/feedback`
get a few thousand generated bodies (MLflow payloads with hostile values, arbitrary JSON, CSV,
raw bytes, lone surrogates, odd content types) and then 16 MB bodies. Every answer is a 2xx or a
4xx with a JSON body, the process stays up, and its peak RSS (VmHWM) stays under twice its idle
RSS plus 100 MB. The amount of work is bounded by `max_examples` and hypothesis' `deadline`."""

from __future__ import annotations

import json
from collections import Counter
from datetime import timedelta
from pathlib import Path

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.serve_helpers import FEATURES, ROW, build_bundle, free_port, start_cli_server, stop

EXAMPLES = {"invocations": 1200, "predict": 800, "feedback": 800}
SETTINGS = dict(
    deadline=timedelta(seconds=10),
    database=None,  # nothing written into the checkout
    derandomize=True,  # the same bodies on every run
    suppress_health_check=list(HealthCheck),
)

# text with everything in it: lone surrogates, NUL, quotes, commas, newlines, non-BMP
TEXT = st.text(st.characters(exclude_categories=()), max_size=30)
KEYS = st.one_of(st.sampled_from(FEATURES), TEXT)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(2**200), max_value=2**200),
    st.floats(allow_nan=True, allow_infinity=True),
    TEXT,
    st.sampled_from(["Adelie", "Biscoe", "Torgersen", "male", "female", "\ud800", "", "NaN"]),
)
JSON = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=6) | st.dictionaries(KEYS, inner, max_size=6),
    max_leaves=25,
)
ROWS = st.fixed_dictionaries({name: st.one_of(st.just(ROW[name]), SCALARS) for name in FEATURES})
RECORDS = st.lists(st.one_of(ROWS, JSON), max_size=8)
PAYLOADS = st.one_of(
    st.fixed_dictionaries(
        {"dataframe_split": st.fixed_dictionaries(
            {"columns": st.one_of(st.just(FEATURES), st.lists(KEYS, max_size=8), JSON),
             "data": st.one_of(st.lists(st.lists(SCALARS, max_size=8), max_size=6), JSON)})}
    ),
    st.fixed_dictionaries({"dataframe_records": st.one_of(RECORDS, JSON)}),
    st.fixed_dictionaries({"instances": st.one_of(RECORDS, JSON)}),
    st.fixed_dictionaries({"inputs": st.one_of(RECORDS, st.dictionaries(KEYS, JSON), JSON)}),
    ROWS,
    RECORDS,
    JSON,
)  # fmt: skip
FEEDBACK_ITEM = st.fixed_dictionaries(
    {"request_id": st.one_of(st.sampled_from(["abc", "r-1", "x" * 64]), TEXT)},
    optional={"label": JSON, "labels": st.one_of(st.lists(SCALARS, max_size=5), JSON)},
)
FEEDBACK = st.one_of(FEEDBACK_ITEM, st.lists(FEEDBACK_ITEM, max_size=5), JSON)
CONTENT_TYPES = st.sampled_from(
    ["application/json", "application/json", "text/csv", "text/plain", "", "application/x+json",
     "text/csv; charset=utf-8", "application/json; charset=latin-1"]
)  # fmt: skip
CELL = st.one_of(TEXT, st.sampled_from(["39.1", "", "Biscoe", "1e400", "nan", '"a,b"', "-0"]))
CSV = st.builds(
    lambda header, rows: "\n".join([",".join(header), *(",".join(r) for r in rows)]),
    st.one_of(st.just(FEATURES), st.permutations(FEATURES), st.lists(KEYS, max_size=8)),
    st.lists(st.lists(CELL, max_size=8), max_size=8),
)


def _encode(obj: object) -> bytes:
    """JSON as a client would send it; NaN/Infinity literals and \\ud800 escapes included."""
    return json.dumps(obj).encode()


def _text_bytes(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")  # a lone surrogate becomes invalid UTF-8


def body_strategy(payloads: st.SearchStrategy) -> st.SearchStrategy:
    return st.one_of(
        st.tuples(payloads.map(_encode), CONTENT_TYPES),
        st.tuples(CSV.map(_text_bytes), st.sampled_from(["text/csv", "application/json"])),
        st.tuples(st.binary(max_size=300), CONTENT_TYPES),
    )


def vm_kb(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {key} for {pid}")


def big_bodies() -> list[tuple[str, bytes, str]]:
    """16 MB bodies, CSV and JSON, each kind of cheap-to-send, costly-to-parse shape."""
    size = 16 * 1024 * 1024 - 4096
    line = ",".join(str(ROW[c]) for c in FEATURES) + "\n"
    header = ",".join(FEATURES) + "\n"
    csv_rows = header + line * ((size - len(header)) // len(line))
    long_cell = "Biscoe" + "x" * 1600
    long_line = f"39.1,18.7,181,3750,{long_cell},male\n"
    csv_long = header + long_line * ((size - len(header)) // len(long_line))
    csv_wide = ",".join(["c"] * (size // 2))
    row = json.dumps([ROW[c] for c in FEATURES])
    rows = ",".join([row] * (size // (len(row) + 1)))
    split = f'{{"dataframe_split":{{"columns":{json.dumps(FEATURES)},"data":[{rows}]}}}}'
    rec = json.dumps(ROW)
    records = "[" + ",".join([rec] * (size // (len(rec) + 1))) + "]"
    zeros = "[" + ",".join(["0"] * (size // 2 - 1)) + "]"
    string = json.dumps("\\ud800" + "y" * (size - 20))
    labels = '{"request_id":"abc","labels":' + zeros + "}"
    csv, js = "text/csv", "application/json"
    return [
        ("/invocations", csv_rows.encode(), csv),
        ("/predict", csv_long.encode(), csv),
        ("/invocations", csv_wide.encode(), csv),
        ("/invocations", split.encode(), js),
        ("/predict", records.encode(), js),
        ("/invocations", zeros.encode(), js),
        ("/predict", string.encode(), js),
        ("/feedback", labels.encode(), js),
        ("/feedback", records.encode(), js),
    ]


def fuzz(endpoint: str, payloads: st.SearchStrategy, post) -> None:
    """Send `EXAMPLES[endpoint]` generated bodies to `/endpoint`."""

    @settings(max_examples=EXAMPLES[endpoint], **SETTINGS)
    @given(body=body_strategy(payloads))
    def run(body: tuple[bytes, str]) -> None:
        post(f"/{endpoint}", *body)

    run()


def test_fuzzed_bodies_get_only_2xx_or_4xx_and_memory_stays_bounded(tmp_path: Path):
    bundle = build_bundle(tmp_path / "bundle")
    port = free_port()
    proc = start_cli_server(["--bundle", str(bundle)], tmp_path, port)
    sent: Counter[str] = Counter()
    statuses: Counter[int] = Counter()
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:

            def post(path: str, body: bytes, ctype: str) -> None:
                headers = {"content-type": ctype} if ctype else {}
                r = client.post(path, content=body, headers=headers)
                sent[path] += 1
                statuses[r.status_code] += 1
                assert 200 <= r.status_code < 500, (path, body[:300], r.status_code, r.text[:300])
                if r.status_code >= 400:
                    assert json.loads(r.content)["error"]
                assert proc.poll() is None

            for _ in range(20):  # warm: the model, the log writer, the allocator
                post("/predict", _encode(ROW), "application/json")
            idle_kb = vm_kb(proc.pid, "VmRSS")

            for endpoint, payloads in [
                ("invocations", PAYLOADS),
                ("predict", PAYLOADS),
                ("feedback", FEEDBACK),
            ]:
                fuzz(endpoint, payloads, post)
            for path, body, ctype in big_bodies():
                assert len(body) > 15 * 1024 * 1024
                post(path, body, ctype)
            peak_kb = vm_kb(proc.pid, "VmHWM")
            assert client.get("/health").status_code == 200
    finally:
        out = stop(proc)
    report = {"sent": dict(sent), "statuses": dict(sorted(statuses.items())),
              "idle_mb": idle_kb // 1024, "peak_mb": peak_kb // 1024}  # fmt: skip
    print(json.dumps(report))  # shown with -s: the figures of the closing note
    assert sum(sent.values()) > 2800
    assert peak_kb < 2 * idle_kb + 100 * 1024, report
    assert "Traceback" not in out, out[-3000:]

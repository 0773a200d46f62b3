"""Hostile HTTP against a real `mlops serve` process: lone surrogates, deep nesting, 16 MB bodies,
slow clients, and a genuine 500 (counted in /metrics, logged without the body)."""

from __future__ import annotations

import json
import socket
import threading
from pathlib import Path

import httpx
import pytest

from tests.serve_helpers import ROW, build_bundle, free_port, start_cli_server, stop

JSON = "application/json"
READ_TIMEOUT = 1.0  # the server's header and body deadline in these tests


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("limits")
    bundle = build_bundle(tmp / "bundle")
    port = free_port()
    proc = start_cli_server(
        ["--bundle", str(bundle), "--read-timeout", str(READ_TIMEOUT)], tmp, port
    )
    yield f"http://127.0.0.1:{port}", port, proc
    stop(proc)


def _post(
    url: str, path: str, body: bytes | str, ctype: str = "application/json"
) -> httpx.Response:
    data = body.encode() if isinstance(body, str) else body
    return httpx.post(url + path, content=data, headers={"content-type": ctype}, timeout=60)


def _json_4xx(r: httpx.Response) -> dict:
    assert 400 <= r.status_code < 500, (r.status_code, r.text[:300])
    r.content.decode("utf-8")  # valid UTF-8
    return json.loads(r.content)


LONE = "\ud800"
SURROGATE_BODIES = [
    ("/predict", {**ROW, "island": LONE}),
    ("/predict", {**ROW, "bill_length_mm": LONE}),
    ("/predict", [{**ROW, "sex": LONE + "x" * 100}]),
    ("/invocations", {"dataframe_split": {"columns": [LONE], "data": [[1]]}}),
    ("/invocations", {LONE: 1}),
    ("/invocations", {"dataframe_records": [{**ROW, "island": [LONE]}]}),
    ("/feedback", {"request_id": LONE, "label": "Adelie"}),
    ("/feedback", {"request_id": "abc", "label": LONE}),
    ("/feedback", [{"request_id": "abc", "labels": [LONE, {LONE: LONE}]}]),
]


@pytest.mark.parametrize(("path", "obj"), SURROGATE_BODIES)
def test_a_lone_surrogate_in_a_refused_value_gets_a_4xx_with_valid_json(server, path, obj):
    url, _, _ = server
    body = _json_4xx(_post(url, path, json.dumps(obj)))  # json.dumps escapes it as \ud800
    assert body["error"]


@pytest.mark.parametrize("path", ["/invocations", "/predict", "/feedback"])
@pytest.mark.parametrize("depth", [40, 1000, 100_000])
def test_nesting_is_limited_on_every_endpoint(server, path: str, depth: int):
    url, _, _ = server
    nested = "[" * depth + "]" * depth
    bodies = [
        '{"request_id":"abc","label":' + nested + "}",
        '{"dataframe_split":{"columns":["island"],"data":' + nested + "}}",
        nested,
    ]
    for text in bodies:
        body = _json_4xx(_post(url, path, text))
        assert body["error"] in ("too_deep", "bad_json"), body


def _csv_16mb() -> bytes:
    line = ",".join(str(ROW[c]) for c in ROW) + "\n"
    return (",".join(ROW) + "\n").encode() + line.encode() * (16_000_000 // len(line))


def _json_16mb() -> bytes:
    row = json.dumps([ROW[c] for c in ROW])
    rows = ",".join([row] * (16_000_000 // (len(row) + 1)))
    return f'{{"dataframe_split":{{"columns":{json.dumps(list(ROW))},"data":[{rows}]}}}}'.encode()


def _long_text_csv(rows: int) -> bytes:
    """Few separators, long cells: passes the value count, so it is parsed (rows capped)."""
    cell = "Biscoe" + "x" * 1500
    line = f"39.1,18.7,181,3750,{cell},male\n"
    return (",".join(ROW) + "\n").encode() + line.encode() * rows


@pytest.mark.parametrize(
    ("name", "make", "ctype", "path", "error"),
    [
        ("csv", _csv_16mb, "text/csv", "/invocations", "too_many_values"),
        ("json", _json_16mb, "application/json", "/invocations", "too_many_values"),
        ("long csv", lambda: _long_text_csv(10_400), "text/csv", "/invocations", "too_many_rows"),
        (
            "long csv ok size",
            lambda: _long_text_csv(9_000),
            "text/csv",
            "/predict",
            "invalid_input",
        ),
    ],
)
def test_a_16mb_body_is_refused_while_other_requests_are_answered(
    server, name, make, ctype, path, error
):
    url, _, _ = server
    body = make()
    assert len(body) > 13_000_000, name
    result: dict = {}

    def big() -> None:
        result["r"] = _post(url, path, body, ctype)

    th = threading.Thread(target=big)
    th.start()
    small = []
    while th.is_alive() or not small:
        small.append(_post(url, "/predict", json.dumps(ROW)).status_code)
    th.join()
    assert set(small) == {200}
    assert _json_4xx(result["r"])["error"] == error


def _recv_all(s: socket.socket) -> bytes:
    """What the server sends until it closes the connection (30 s at most)."""
    s.settimeout(30)
    data = b""
    while chunk := s.recv(65536):
        data += chunk
    return data


def test_a_body_that_does_not_arrive_in_time_gets_408_and_the_connection_closes(server):
    _, port, _ = server
    for path in ("/predict", "/feedback"):
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.sendall(
                f"POST {path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
                "content-length: 100\r\n\r\n{".encode()
            )
            reply = _recv_all(s)
        assert reply.startswith(b"HTTP/1.1 408"), reply[:200]
        assert json.loads(reply.split(b"\r\n\r\n", 1)[1])["error"] == "request_timeout"


@pytest.mark.parametrize("sent", [b"", b"POST /predict HTTP/1.1\r\n", b"GET /hea"])
def test_headers_that_do_not_arrive_in_time_get_the_connection_closed(server, sent: bytes):
    _, port, _ = server
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(sent)
        assert _recv_all(s) == b""


def test_600_stalled_clients_do_not_block_a_request_and_are_all_closed(server):
    url, port, _ = server
    socks = []
    try:
        for i in range(600):
            s = socket.create_connection(("127.0.0.1", port))
            if i % 2:
                s.sendall(b"POST /predict HTTP/1.1\r\nhost: x\r\ncontent-length: 999\r\n\r\n[")
            else:
                s.sendall(b"POST /predict HTTP/1.1\r\nhost: x\r\ncontent-le")
            socks.append(s)
        assert _post(url, "/predict", json.dumps(ROW)).status_code == 200
        replies = [_recv_all(s) for s in socks]
    finally:
        for s in socks:
            s.close()
    assert sum(r.startswith(b"HTTP/1.1 408") for r in replies) == 300
    assert sum(r == b"" for r in replies) == 300
    assert httpx.get(url + "/health", timeout=30).status_code == 200


def _failing_bundle(dest: Path) -> Path:
    """A real bundle that fails on a missing value: a bare LogisticRegression (no imputer) on a
    nullable feature; the service cannot compile it, so it predicts with scikit-learn, which
    raises on NaN."""
    import skops.io as sio
    from sklearn.linear_model import LogisticRegression

    from mlops.bundle import write_bundle

    model = LogisticRegression().fit([[0.0], [0.2], [0.8], [1.0]], ["a", "a", "b", "b"])
    schema = {"features": [{"name": "x", "dtype": "float64", "nullable": True, "min": 0.0,
                            "max": 1.0}]}  # fmt: skip
    files = {"model.skops": sio.dumps(model), "schema.json": json.dumps(schema).encode()}
    write_bundle(dest, files, {"name": "failing", "task": "classification"})
    return dest


def test_a_5xx_is_counted_in_metrics_and_logged_without_the_body(tmp_path: Path):
    bundle = _failing_bundle(tmp_path / "bundle")
    port = free_port()
    proc = start_cli_server(["--bundle", str(bundle)], tmp_path, port)
    url = f"http://127.0.0.1:{port}"
    try:
        assert _post(url, "/predict", '{"x": 0.9}').json()["predictions"] == ["b"]
        r = _post(url, "/predict", '{"x": null, "note": "SECRET-IN-BODY"}')
        assert r.status_code == 500 and r.json()["error"] == "internal"
        metrics = httpx.get(url + "/metrics", timeout=30).text
    finally:
        out = stop(proc)
    assert 'mlops_server_errors_total{endpoint="predict"} 1' in metrics
    assert 'mlops_requests_total{endpoint="predict",status="500"} 1' in metrics
    assert "prediction failed" in out and "SECRET-IN-BODY" not in out

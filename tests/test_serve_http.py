"""The prediction service over real HTTP on 127.0.0.1 (uvicorn in a thread of the test process)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import httpx
import numpy as np
import pytest

from mlops.serve.log import iter_rows, read_log
from mlops.serve.service import ServeConfig
from tests.serve_helpers import FEATURES, ROW, ThreadServer, build_bundle, penguins

JSON = {"content-type": "application/json"}


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_bundle(tmp_path_factory.mktemp("bundle") / "penguins-classifier")


@pytest.fixture(scope="module")
def server(bundle: Path, tmp_path_factory: pytest.TempPathFactory):
    log_dir = tmp_path_factory.mktemp("log") / "predictions"
    srv = ThreadServer(ServeConfig(bundle=str(bundle), log_dir=str(log_dir), max_rows=500))
    srv.client = httpx.Client(base_url=srv.url, timeout=10)
    yield srv
    srv.client.close()
    srv.stop()


def post(server, path: str, body, headers=None) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return server.client.post(path, content=content, headers=headers or JSON)


def test_same_predictions_in_process_and_through_the_service(server, bundle):
    """Acceptance: the same inputs give the same predictions in-process and over HTTP."""
    from mlops.bundle import load_bundle

    df = penguins().sample(120, random_state=1)  # real rows, some with a missing sex
    X = df[FEATURES]
    assert X["sex"].isna().any()
    model = load_bundle(bundle).model
    expected, expected_proba = model.predict(X).tolist(), model.predict_proba(X)
    records = [{k: (None if v != v else v) for k, v in r.items()} for r in X.to_dict("records")]
    split = {"columns": FEATURES, "data": [[r[f] for f in FEATURES] for r in records]}
    csv = X.to_csv(index=False).encode()
    answers = [
        post(server, "/invocations", {"dataframe_split": split}),
        post(server, "/invocations", {"dataframe_records": records}),
        post(server, "/invocations", {"instances": records}),
        post(server, "/invocations", {"inputs": {f: [r[f] for r in records] for f in FEATURES}}),
        post(server, "/invocations", csv, {"content-type": "text/csv"}),
        post(server, "/predict", records),
    ]
    for r in answers:
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["predictions"] == expected
        np.testing.assert_allclose(body["probabilities"], expected_proba, rtol=1e-9, atol=1e-9)
        assert body["classes"] == ["Adelie", "Chinstrap", "Gentoo"]
        assert body["model"] == "penguins-classifier" and body["version"] == "unversioned"
        assert r.headers["x-request-id"] == body["request_id"]
    for i in (0, 7, 42):  # one row at a time too
        r = post(server, "/predict", records[i])
        assert r.json()["predictions"] == [expected[i]]
    assert len({r.json()["request_id"] for r in answers}) == len(answers)


def test_invalid_input_is_422_with_every_problem_per_field(server):
    rows = [dict(ROW, island="Mars", bill_length_mm="long"), dict(ROW, body_mass_g=1e9)]
    for r in rows:
        r.pop("sex")
        r["extra"] = "ignored"
    r = post(server, "/invocations", {"dataframe_records": rows})
    assert r.status_code == 422
    body = r.json()
    assert body["error"] == "invalid_input" and body["request_id"]
    assert set(body["fields"]) == {"island", "bill_length_mm", "body_mass_g", "sex"}
    assert body["fields"]["sex"]["problems"] == ["missing column"]
    assert body["fields"]["body_mass_g"]["problems"][0]["row"] == 1
    assert "extra" not in body["fields"]


@pytest.mark.parametrize(
    ("path", "method", "body", "ctype", "status"),
    [
        ("/invocations", "POST", b"{not json", "application/json", 400),
        ("/invocations", "POST", b"", "application/json", 400),
        ("/invocations", "POST", b"<xml/>", "application/xml", 415),
        ("/invocations", "GET", b"", "application/json", 405),
        ("/predict", "POST", b"[]", "application/json", 422),
        ("/nowhere", "GET", b"", "application/json", 404),
        ("/feedback", "POST", b"nope", "application/json", 400),
    ],
)
def test_bad_requests_get_4xx(server, path, method, body, ctype, status):
    r = server.client.request(method, path, content=body, headers={"content-type": ctype})
    assert r.status_code == status, r.text
    assert r.json()


def test_limits_are_413(bundle, tmp_path):
    srv = ThreadServer(ServeConfig(bundle=str(bundle), max_rows=3, max_body_bytes=2000))
    try:
        with httpx.Client(base_url=srv.url, timeout=10) as c:
            r = c.post("/predict", json=[ROW] * 4)
            assert r.status_code == 413 and r.json()["error"] == "too_many_rows"
            r = c.post("/predict", json=[dict(ROW, pad="x" * 3000)])
            assert r.status_code == 413 and r.json()["error"] == "body_too_large"

            def chunks():  # no content-length: the limit holds while streaming too
                for _ in range(10):
                    yield b" " * 500

            r = c.post("/predict", content=chunks(), headers=JSON)
            assert r.status_code == 413
            r = c.post("/feedback", content=chunks(), headers=JSON)
            assert r.status_code == 413 and r.json()["error"] == "body_too_large"
            assert c.post("/predict", json=[ROW] * 3).status_code == 200  # still serving
    finally:
        srv.stop()


def test_health_ready_version(server, bundle):
    assert server.client.get("/health").json() == {"status": "ok"}
    assert server.client.get("/ping").status_code == 200
    ready = server.client.get("/ready")
    assert ready.status_code == 200 and ready.json()["ready"] is True
    v = server.client.get("/version").json()
    assert v["name"] == "penguins-classifier" and v["version"] == "unversioned"
    assert v["commit"] == "0" * 40 and v["loaded_at"].endswith("+00:00")
    assert v["prediction_path"] == "numpy" and v["pending_error"] is None
    assert [f["name"] for f in v["features"]] == FEATURES
    assert server.client.get("/openapi.json").json()["info"]["title"] == "mlops model service"


def test_metrics_parse_with_the_prometheus_parser(server):
    from prometheus_client.parser import text_string_to_metric_families

    before = _samples(server)
    assert post(server, "/predict", [ROW, ROW]).status_code == 200
    assert post(server, "/predict", [dict(ROW, island="Mars")]).status_code == 422
    r = server.client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(r.text)}
    for name in (
        "mlops_requests",
        "mlops_request_errors",
        "mlops_request_duration_seconds",
        "mlops_requests_in_flight",
        "mlops_prediction_rows",
        "mlops_predictions",
        "mlops_invalid_values",
        "mlops_model_info",
        "mlops_model_loaded_timestamp_seconds",
        "mlops_prediction_log_entries",
    ):
        assert name in families, name
    after = _samples(server)

    def delta(name, **labels):
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0) - before.get(key, 0)

    assert delta("mlops_requests_total", endpoint="predict", status="200") == 1
    assert delta("mlops_requests_total", endpoint="predict", status="422") == 1
    assert delta("mlops_request_errors_total", endpoint="predict", error="invalid_input") == 1
    assert delta("mlops_invalid_values_total", field="island") == 1
    assert delta("mlops_prediction_rows_total", version="unversioned") == 2
    assert delta("mlops_predictions_total", version="unversioned", **{"class": "Adelie"}) == 2
    assert delta("mlops_request_duration_seconds_count", endpoint="predict") == 2
    info = families["mlops_model_info"].samples[0]
    assert info.labels["version"] == "unversioned" and info.labels["mode"] == "numpy"


def _samples(server) -> dict:
    from prometheus_client.parser import text_string_to_metric_families

    text = server.client.get("/metrics").text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
    }


def test_prediction_log_and_feedback(bundle, tmp_path):
    log_dir = tmp_path / "predictions"
    srv = ThreadServer(ServeConfig(bundle=str(bundle), log_dir=str(log_dir)))
    try:
        with httpx.Client(base_url=srv.url, timeout=10) as c:
            r = c.post(
                "/predict", json=[ROW, dict(ROW, sex=None)], headers={"x-request-id": "abc-1"}
            )
            assert r.json()["request_id"] == "abc-1"
            r2 = c.post("/invocations", json={"dataframe_records": [ROW]})
            rid2 = r2.json()["request_id"]
            assert c.post("/predict", json=[dict(ROW, island="Mars")]).status_code == 422
            fb = c.post("/feedback", json={"request_id": "abc-1", "labels": ["Adelie", "Gentoo"]})
            assert fb.status_code == 202 and fb.json() == {"accepted": 1}
            fb = c.post("/feedback", json=[{"request_id": rid2, "label": "Adelie"}])
            assert fb.status_code == 202
            bad = c.post("/feedback", json={"request_id": rid2, "label": "Dodo"})
            assert bad.status_code == 422 and "unknown class" in bad.text
            assert c.post("/feedback", json={"label": "Adelie"}).status_code == 422
    finally:
        srv.stop()  # flushes the log
    entries = list(read_log(log_dir))
    kinds = [e["kind"] for e in entries]
    assert kinds.count("prediction") == 2 and kinds.count("feedback") == 2  # not the 422
    refused = [e for e in entries if e["kind"] == "error"]  # the 422, for data-quality checks
    assert len(refused) == 1 and refused[0]["status"] == 422
    assert refused[0]["fields"] == {"island": 1} and refused[0]["endpoint"] == "predict"
    assert "inputs" not in refused[0]  # which fields were refused, never the body
    first = next(e for e in entries if e.get("request_id") == "abc-1" and e["kind"] == "prediction")
    assert first["n"] == 2 and first["endpoint"] == "predict"
    assert first["inputs"]["sex"] == ["male", None]
    assert first["inputs"]["bill_length_mm"] == [39.1, 39.1]
    assert first["predictions"] == ["Adelie", "Adelie"]
    assert len(first["probabilities"]) == 2 and first["classes"][0] == "Adelie"
    assert first["model"] == "penguins-classifier" and first["version"] == "unversioned"
    assert first["ts"] > 1.6e9 and first["latency_ms"] > 0
    rows = list(iter_rows(entries))
    assert len(rows) == 3
    labelled = [(r["request_id"], r["row"], r.get("label")) for r in rows]
    assert ("abc-1", 0, "Adelie") in labelled and ("abc-1", 1, "Gentoo") in labelled
    assert (rid2, 0, "Adelie") in labelled


def test_fuzzed_bodies_get_only_4xx_and_the_server_stays_up(server):
    """Acceptance: random JSON, wrong types, huge numbers, NaN, deep nesting, empty, binary."""
    rng = random.Random(6)
    leaves = [None, True, 0, -1, 1e308, 10**30, 3.5, "", "x" * 300, "Biscoe", [], {}]

    def junk(depth: int = 0):
        kind = rng.random()
        if depth > 3 or kind < 0.4:
            return rng.choice(leaves)
        if kind < 0.7:
            return [junk(depth + 1) for _ in range(rng.randint(0, 4))]
        keys = [*FEATURES, "dataframe_split", "data", "columns", "inputs", "zz"]
        return {rng.choice(keys): junk(depth + 1) for _ in range(rng.randint(0, 4))}

    bodies = [
        b"",
        b"NaN",
        b"[NaN, Infinity, -Infinity]",
        b'{"dataframe_records": [{"bill_length_mm": NaN}]}',
        b'{"dataframe_records": [{"bill_length_mm": 1' + b"0" * 5000 + b"}]}",
        b"[" * 5000 + b"]" * 5000,
        b'{"inputs": ' * 3000 + b"1" + b"}" * 3000,
        bytes(range(256)),
        b"\x00" * 1000,
        "\u2603\ud800".encode("utf-8", "surrogatepass"),
    ]
    bodies += [json.dumps(junk()).encode() for _ in range(150)]
    for fmt in ("dataframe_records", "instances", "inputs", "dataframe_split"):
        for _ in range(40):
            row = dict(ROW)
            for f in rng.sample(FEATURES, rng.randint(1, 3)):
                row[f] = rng.choice(leaves)
            payload = (
                [row]
                if fmt != "dataframe_split"
                else {"columns": list(row), "data": [list(row.values())]}
            )
            bodies.append(json.dumps({fmt: payload}).encode())
    seen = set()
    for body in bodies:
        for path, ctype in (
            ("/invocations", "application/json"),
            ("/predict", "application/json"),
            ("/invocations", "text/csv"),
        ):
            r = server.client.post(path, content=body, headers={"content-type": ctype})
            seen.add(r.status_code)
            assert 400 <= r.status_code < 500 or r.status_code == 200, (body[:200], r.text)
            if r.status_code != 200:
                assert r.json()["error"]
    assert seen >= {400, 422}
    assert server.client.get("/health").status_code == 200
    assert post(server, "/predict", [ROW]).status_code == 200

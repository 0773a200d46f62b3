"""A hot swap never serves a new version with stale project modules (issue 19): a real
`mlops serve` follows a real target; the project's features.py changes on disk (a checkout
moving on) and a version trained with the new code is deployed. The files on disk now match
that version, but the server process imported the old features.py: it refuses the switch, keeps
serving the old version and says so in /ready, /version, /metrics and its log. A version
whose pinned code is not the installed code (a pod's image at another commit) is refused the
same way."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from mlops.deploy.target import open_target
from tests.codepin_helpers import FEATURES_PY, HELPERS_PY, bundle_pinning
from tests.serve_helpers import ROW, free_port, start_cli_server, stop

pytestmark = pytest.mark.slow


def test_a_version_pinning_new_project_code_is_not_hot_swapped_in(
    tmp_path: Path, project: Path, monkeypatch
):
    (project / "helpers.py").write_text(HELPERS_PY)
    (project / "features.py").write_text(FEATURES_PY)
    pipeline = project / "pipeline.yaml"
    text = pipeline.read_text()
    assert "\nmodel:\n" in text
    pipeline.write_text(
        text.replace("\nmodel:\n", "\nmodel:\n  trusted_types: [features.BillRatio]\n")
    )
    v1, _ = bundle_pinning(project, tmp_path / "v1", monkeypatch)
    target = open_target(tmp_path / "target", create=True)
    target.install(v1, "v1.0.0", name="penguins-classifier", commit="1" * 40)
    target.switch("v1.0.0")
    port = free_port()
    args = ["--target", str(target.root), "--poll", "0.1", "--no-log"]
    server = start_cli_server(args, project, port)  # the project's root: its code and types
    try:
        http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
        assert http.post("/predict", json=[ROW]).json()["version"] == "v1.0.0"

        # the checkout moves on: features.py changes, and a version trained with it is deployed
        edited = FEATURES_PY.replace("X = X.copy()", "X = X.copy()  # v2")
        (project / "features.py").write_text(edited)
        v2, _ = bundle_pinning(project, tmp_path / "v2", monkeypatch)
        target.install(v2, "v2.0.0", name="penguins-classifier", commit="2" * 40)
        target.switch("v2.0.0")
        deadline = time.monotonic() + 60  # a wait for the poll, not a timing assertion
        while http.get("/version").json()["pending_error"] is None:
            assert time.monotonic() < deadline, "the server never looked at v2.0.0"
            time.sleep(0.1)

        pending = http.get("/version").json()["pending_error"]
        assert pending["restart_required"] is True and "v2.0.0" in pending["path"]
        assert "features.py: this process imported" in pending["error"]
        ready = http.get("/ready")
        assert ready.status_code == 200  # the old version keeps serving
        body = ready.json()
        assert body["version"] == "v1.0.0" and body["restart_required"] is True
        assert "restart the server" in body["detail"] and "features.py" in body["detail"]
        assert http.post("/predict", json=[ROW]).json()["version"] == "v1.0.0"
        metrics = http.get("/metrics").text
        assert 'mlops_model_reloads_total{result="restart_required"} 1' in metrics
        assert 'mlops_model_reloads_total{result="failed"}' not in metrics

        # a version pinning code that is not even installed (a pod whose image is older)
        (project / "features.py").write_text(edited.replace("# v2", "# v3"))
        v3, _ = bundle_pinning(project, tmp_path / "v3", monkeypatch)
        (project / "features.py").write_text(edited)
        target.install(v3, "v3.0.0", name="penguins-classifier", commit="3" * 40)
        target.switch("v3.0.0")
        deadline = time.monotonic() + 60
        while "v3.0.0" not in (http.get("/version").json()["pending_error"] or {})["path"]:
            assert time.monotonic() < deadline, "the server never looked at v3.0.0"
            time.sleep(0.1)
        body = http.get("/ready").json()
        assert body["version"] == "v1.0.0" and body["restart_required"] is True
        assert "features.py: sha256" in body["detail"] and "image built at" in body["detail"]
        metrics = http.get("/metrics").text
        assert 'mlops_model_reloads_total{result="restart_required"} 2' in metrics
    finally:
        out = stop(server)
    assert "not switching to" in out and "v2.0.0" in out  # the log says it too

    # what the operator does: a new process imports the new code and serves v2.0.0
    target.switch("v2.0.0")
    server = start_cli_server(args, project, port)
    try:
        r = httpx.post(f"http://127.0.0.1:{port}/predict", json=[ROW], timeout=30)
        assert r.json()["version"] == "v2.0.0"
        assert "restart_required" not in httpx.get(f"http://127.0.0.1:{port}/ready").json()
    finally:
        stop(server)

"""The loop closed, end to end: deploy the example model, serve it (`mlops serve` on 127.0.0.1),
send traffic that really differs (another island), `mlops monitor` breaches naming the drifted
columns and retrains on the newest data span, registers and deploys to staging; traffic like the
training data is no breach; feedback showing the new version worse than its predecessor rolls it
back, and the registry shows it. One server for the whole story; two pipeline runs."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import httpx
import pytest
import yaml

from mlops import api
from mlops.pipeline.records import RunStore
from mlops.serve.log import read_log
from tests.helpers import commit_all, git
from tests.monitor_helpers import group
from tests.serve_helpers import free_port, start_cli_server, stop

pytestmark = pytest.mark.slow
NAME = "penguins-classifier"


def _pipeline(root: Path, **monitoring) -> None:
    path = root / "pipeline.yaml"
    data = yaml.safe_load(path.read_text())
    data["stages"]["ingest"]["with"]["span"] = {"column": "year", "from": 2007, "to": 2008}
    data["monitoring"] = {
        "drift": {"method": "auto", "share": 0.5},
        "performance": {"metric": "accuracy", "min": 0.85, "min_labels": 30},
        "retrain": {"span": "widen", "deploy": "staging"},
        **monitoring,
    }
    path.write_text(yaml.safe_dump(data, sort_keys=False))


class Client:
    """Traffic and feedback over HTTP, as a client of the service would send them."""

    def __init__(self, url: str, log: Path) -> None:
        self.http = httpx.Client(base_url=url, timeout=30)
        self.log = log
        self.sent = 0
        self.refused = 0

    def send(self, rows: list[dict], labels: list[str]) -> set[str]:
        """Versions that answered; rows the service refuses (a value outside the training
        range: 422) are skipped, as a client would, and the log counts them."""
        versions = set()
        for row, label in zip(rows, labels, strict=True):
            r = self.http.post("/predict", json=[row])
            if r.status_code == 422:
                self.refused += 1
                continue
            assert r.status_code == 200, r.text
            self.sent += 1
            body = r.json()
            versions.add(body["version"])
            feedback = {"request_id": body["request_id"], "label": label}
            fb = self.http.post("/feedback", json=feedback)
            assert fb.status_code == 202
        deadline = time.time() + 30  # the log is written in batches, off the request path
        while time.time() < deadline:
            kinds = [e["kind"] for e in read_log(self.log)]
            if kinds.count("prediction") >= self.sent and kinds.count("feedback") >= self.sent:
                return versions
            time.sleep(0.1)
        raise AssertionError("the prediction log did not catch up")

    def wait_version(self, version: str) -> None:
        deadline = time.time() + 60
        while time.time() < deadline:
            if self.http.get("/version").json().get("version") == version:
                return
            time.sleep(0.1)
        raise AssertionError(f"the service did not switch to {version}")


def _monitor(cli, root: Path, *args: str) -> tuple[int, dict]:
    r = cli(["monitor", "--env", "staging", "--json", *args], cwd=root)
    return r.exit_code, json.loads(r.output)


def test_drift_retrains_and_deploys_then_a_worse_version_is_rolled_back(
    tmp_path: Path, _initialised_template: Path, cli
):
    root = tmp_path / "project"
    shutil.copytree(_initialised_template, root, symlinks=True)
    _pipeline(root, on_breach="retrain")
    commit_all(root, "Train on 2007-2008; monitoring retrains on drift")
    run = api.run(root)
    assert run.error is None, run.error
    api.commit(root)
    assert api.register(root).version == "v0.0.1"
    assert api.deploy(root, "staging").version == "v0.0.1"
    first = json.loads((root / ".mlops/envs/staging/versions/v0.0.1/metadata.json").read_text())
    assert first["prediction_reference"]["columns"]["prediction"]["kind"] == "categorical"

    port = free_port()
    server = start_cli_server(["--env", "staging", "--poll", "0.1"], root, port)
    try:
        client = Client(f"http://127.0.0.1:{port}", root / ".mlops/envs/staging/predictions")

        # 1. traffic from another island: breach, named columns; the dry run changes nothing
        rows, labels = group("Dream", n=150, seed=11)
        assert client.send(rows, labels) == {"v0.0.1"}
        code, dry = _monitor(cli, root, "--dry-run")
        assert code == 7 and dry["action"]["kind"] == "retrain"
        drifted = next(b for b in dry["breaches"] if b["check"] == "input_drift")["columns"]
        assert {"island", "flipper_length_mm", "bill_depth_mm"} <= set(drifted)
        assert "sex" not in drifted
        # Dream has values outside the 2007-2008 training range, but inside the data contract:
        # serving ranges are the contract's (data/schema.yaml), so real penguins are answered
        assert client.refused == 0
        assert dry["quality"]["out_of_schema"] == client.refused
        assert dry["traffic"]["live_rows"] == client.sent
        assert "year 2007..2008 -> 2007..2009" in "\n".join(dry["action"]["steps"])
        assert git(root, "status", "--porcelain") == ""

        # 2. the action: retrain on the newest span, register, deploy to staging
        before = git(root, "rev-parse", "HEAD")
        code, report = _monitor(cli, root)
        assert code == 7
        action = report["action"]
        assert action["status"] == "done", action
        assert action["details"]["version"] == "v0.0.2"
        assert action["details"]["deployed"]["version"] == "v0.0.2"
        assert "input drift" in action["reason"]
        assert "to: 2009" in git(root, "show", "HEAD:pipeline.yaml")
        assert git(root, "status", "--porcelain") == ""
        second = json.loads((root / f"models/{NAME}/metadata.json").read_text())
        assert second["train_rows"] > first["train_rows"]  # trained on the new span
        assert api.desired(root, "staging").version == "v0.0.2"
        (retrain,) = RunStore(root).list(kind="retrain")
        assert retrain.outcome == "ok" and retrain.extra["reason"] == action["reason"]
        assert retrain.extra["monitor_run"] == report["run_id"]
        monitored = RunStore(root).get(report["run_id"])
        assert monitored.git_commit == before  # where the checks ran, not the retrain's commit
        assert git(root, "rev-parse", "HEAD") != before
        client.wait_version("v0.0.2")  # the server follows the deployment

        # 3. traffic like the training data, to the new version: no breach
        rows, labels = group(None, n=150, seed=12)
        assert client.send(rows, labels) == {"v0.0.2"}
        code, report = _monitor(cli, root)
        assert code == 0, report["summary"]
        assert report["version"] == "v0.0.2" and report["previous"] == "v0.0.1"
        assert report["traffic"]["live_rows"] == 150 and report["action"]["kind"] == "none"
        assert report["prediction_note"] == "against the evaluation set's predictions"

        # 4. feedback shows v0.0.2 doing worse than v0.0.1 did: roll back
        _pipeline(root, on_breach="rollback")
        commit_all(root, "Monitoring rolls back")
        swap = {"Adelie": "Gentoo", "Gentoo": "Chinstrap", "Chinstrap": "Adelie"}
        rows, labels = group(None, n=150, seed=13)
        labels = [swap[s] if i % 2 else s for i, s in enumerate(labels)]
        client.send(rows, labels)
        code, report = _monitor(cli, root)
        assert code == 7
        checks = {b["check"] for b in report["breaches"]}
        assert {"worse_than_previous", "performance"} <= checks
        action = report["action"]
        assert action["kind"] == "rollback" and action["status"] == "done", action
        assert (root / ".mlops/envs/staging/current").resolve().name == "v0.0.1"
        client.wait_version("v0.0.1")
        latest = api.registry_show(root).history(NAME)[0]
        assert latest.stage == "staging" and latest.version == "v0.0.1"
        assert latest.fields.get("rollback-from") == "v0.0.2"
        (rolled,) = RunStore(root).list(kind="rollback")
        assert rolled.extra["to"] == "v0.0.1" and rolled.extra["from"] == "v0.0.2"
        assert "does worse online than v0.0.1" in rolled.extra["reason"]
        assert rolled.extra["stage_tag"] == latest.tag
    finally:
        stop(server)

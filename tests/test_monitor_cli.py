"""`mlops monitor` as a user runs it: exit codes, output formats, bad logs, dry runs, records."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

from mlops.deploy.target import open_target
from mlops.pipeline.records import RunStore
from tests.monitor_helpers import group, serve_rows, set_monitoring


def _log(project: Path) -> Path:
    return project / ".mlops/envs/staging/predictions"


def test_a_breach_exits_7_in_every_format_and_is_recorded(staged: Path, bundle: Path, cli):
    rows, labels = group("Dream")
    serve_rows(bundle, _log(staged), rows, labels, version="v0.0.1")
    r = cli(["monitor", "--env", "staging"], cwd=staged)
    assert r.exit_code == 7, r.output
    assert "BREACH: input drift in" in r.output and "island" in r.output
    assert "online performance" in r.output and "monitoring breach in staging" in r.output
    assert "input drift: DATASET DRIFT (4 of 6 drifted;" in r.output
    r = cli(["monitor", "--env", "staging", "--json", "--html", "m.html"], cwd=staged)
    assert r.exit_code == 7
    report = json.loads(r.output)
    assert report["breach"] and report["version"] == "v0.0.1"
    assert "island" in report["breaches"][0]["columns"]
    assert report["action"]["kind"] == "alert" and report["log"]["bytes_parsed"] == 0  # indexed
    page = (staged / "m.html").read_text()
    assert page.count("<svg") >= 5 and "island" in page
    r = cli(["monitor", "--env", "staging", "--markdown"], cwd=staged)
    assert r.exit_code == 7 and r.output.startswith("## Monitoring `staging`: **BREACH**")
    runs = RunStore(staged).list(kind="monitor")
    assert [x.outcome for x in runs] == ["breach"] * 3
    assert runs[0].extra["env"] == "staging" and runs[0].verdict["breach"]
    assert runs[0].metrics["labelled"] == 150
    listed = cli(["runs", "list"], cwd=staged)
    assert listed.exit_code == 0 and "monitor" in listed.output


def test_no_breach_and_an_empty_window_exit_0(staged: Path, bundle: Path, cli):
    r = cli(["monitor", "--env", "staging"], cwd=staged)  # no log yet
    assert r.exit_code == 0 and "no traffic in the window" in r.output
    rows, labels = group(None, n=200, seed=7)
    serve_rows(bundle, _log(staged), rows, labels, version="v0.0.1", batch=5)
    r = cli(["monitor", "--env", "staging", "--since", "1h"], cwd=staged)
    assert r.exit_code == 0 and "no breach" in r.output, r.output
    assert "window last 1h" in r.output
    assert "input drift: DATASET DRIFT" not in r.output
    assert [x.outcome for x in RunStore(staged).list(kind="monitor")] == ["ok", "empty"]
    r = cli(["monitor", "--env", "staging", "--log-dir", "typo"], cwd=staged)
    assert r.exit_code == 2 and "no prediction log at typo" in r.output


def test_a_corrupt_or_truncated_log_is_a_report_not_a_traceback(staged: Path, bundle, cli):
    log = _log(staged)
    log.mkdir(parents=True)
    (log / "20240101T000000.000000-1.jsonl").write_bytes(os.urandom(3000))  # no newline at all
    (log / "20240101T000001.000000-1.jsonl").write_bytes(b'{"kind": "prediction", "ts": 1\n')
    (log / "20240101T000002.000000-1.jsonl").write_bytes(b"[]\n{}\nnull\n")
    r = cli(["monitor", "--env", "staging"], cwd=staged)
    assert r.exit_code == 0, r.output
    assert "no traffic in the window" in r.output and "skipped" in r.output
    rows, labels = group("Dream", n=40)
    serve_rows(bundle, log, rows, labels, version="v0.0.1")  # good lines beside the bad ones
    r = cli(["monitor", "--env", "staging", "--json"], cwd=staged)
    assert r.exit_code == 7 and json.loads(r.output)["traffic"]["rows"] == 40


def test_usage_errors_and_nothing_deployed(project: Path, cli):
    r = cli(["monitor", "--env", "staging"], cwd=project)
    assert r.exit_code == 5 and "Deploy a version" in r.output
    r = cli(["monitor", "--env", "nowhere"], cwd=project)
    assert r.exit_code == 2 and "staging, production" in r.output
    (project / ".mlops/envs/staging").mkdir(parents=True)
    r = cli(["monitor", "--env", "staging", "--since", "yesterday"], cwd=project)
    assert r.exit_code == 2 and "--since" in r.output and "24h" in r.output
    (project / ".mlops/envs/staging/current").symlink_to("versions/v1")
    (project / ".mlops/envs/staging/versions/v1").mkdir(parents=True)  # not a bundle
    r = cli(["monitor", "--env", "staging"], cwd=project)
    assert r.exit_code == 6 and "metadata.json" in r.output  # nothing unverified is read


def test_dry_run_shows_the_retrain_it_would_do(staged: Path, bundle: Path, cli):
    set_monitoring(
        staged,
        {"on_breach": "retrain", "retrain": {"span": "widen", "deploy": "staging"}},
        span={"column": "year", "from": 2007, "to": 2008},
    )
    before = (staged / "pipeline.yaml").read_text()
    rows, labels = group("Dream")
    serve_rows(bundle, _log(staged), rows, labels, version="v0.0.1")
    r = cli(["monitor", "--env", "staging", "--dry-run", "--json"], cwd=staged)
    assert r.exit_code == 7
    action = json.loads(r.output)["action"]
    assert action["kind"] == "retrain" and action["status"].startswith("dry run")
    assert "input drift" in action["reason"]
    steps = "\n".join(action["steps"])
    assert "year 2007..2008 -> 2007..2009" in steps and "mlops deploy --env staging" in steps
    assert (staged / "pipeline.yaml").read_text() == before  # nothing done
    (rec,) = RunStore(staged).list(kind="monitor")
    assert rec.outcome == "dry" and rec.extra["action"]["kind"] == "retrain"
    assert not RunStore(staged).list(kind="retrain")


def test_rollback_needs_evidence_against_the_live_version(staged: Path, bundle: Path, cli):
    set_monitoring(staged, {"on_breach": "rollback"})
    rows, labels = group("Dream")
    serve_rows(bundle, _log(staged), rows, labels, version="v0.0.1")
    r = cli(["monitor", "--env", "staging", "--json"], cwd=staged)
    assert r.exit_code == 7
    action = json.loads(r.output)["action"]
    assert action["kind"] == "alert"  # drift alone does not roll back
    assert "nothing to roll back on" in action["reason"]


def test_a_retrain_refuses_a_dirty_work_tree_and_says_so(staged: Path, bundle: Path, cli):
    set_monitoring(staged, {"on_breach": "retrain"})  # not committed: the tree is dirty
    rows, labels = group("Dream")
    serve_rows(bundle, _log(staged), rows, labels, version="v0.0.1")
    r = cli(["monitor", "--env", "staging", "--json"], cwd=staged)
    assert r.exit_code == 7
    action = json.loads(r.output)["action"]
    assert action["kind"] == "retrain" and action["status"] == "failed"
    assert "uncommitted changes (pipeline.yaml)" in action["error"]
    assert "Commit or stash" in action["next_step"]
    assert not RunStore(staged).list(kind="retrain")  # nothing ran


@pytest.mark.slow
def test_a_retrain_that_fails_its_gates_leaves_the_work_tree_as_it_was(trained: Path, cli):
    from tests.helpers import commit_all, git

    set_monitoring(
        trained,
        {"on_breach": "retrain", "retrain": {"deploy": "staging"}},
        span={"column": "year", "from": 2007, "to": 2008},
    )
    path = trained / "pipeline.yaml"
    data = yaml.safe_load(path.read_text())
    data["stages"]["evaluate"]["gates"] = {"accuracy": {"min": 0.9999}}  # cannot pass
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    commit_all(trained, "Monitoring retrains; a gate no model passes")
    lock = (trained / "dvc.lock").read_bytes()
    bundle = trained / "models/penguins-classifier"
    target = open_target(trained / ".mlops/envs/staging", create=True)
    target.install(bundle, "v0.0.1", name="penguins-classifier")
    target.switch("v0.0.1")
    rows, labels = group("Dream")
    serve_rows(target.current_dir(), target.predictions_dir, rows, labels, version="v0.0.1")
    r = cli(["monitor", "--env", "staging", "--json"], cwd=trained)
    assert r.exit_code == 7
    action = json.loads(r.output)["action"]
    assert action["status"] == "failed" and "not kept" in action["error"], action
    assert "quality gates" in action["error"] and "is as it was" in action["next_step"]
    assert any("set the ingest span year to 2007..2009" in s for s in action["steps"])
    assert git(trained, "status", "--porcelain") == ""  # pipeline.yaml and dvc.lock restored
    assert (trained / "dvc.lock").read_bytes() == lock
    (run,) = RunStore(trained).list(kind="retrain")
    assert run.outcome == "gate_failed" and "input drift" in run.extra["reason"]
    assert "@v" not in git(trained, "tag", "--list")  # nothing registered
    assert cli(["status"], cwd=trained).exit_code == 0


def test_monitoring_settings_are_checked_with_their_key_paths(project: Path, cli):
    path = project / "pipeline.yaml"
    data = yaml.safe_load(path.read_text())
    data["monitoring"] = {"window": "yesterday", "on_breach": "panic", "retrain": {"span": "x"}}
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    r = cli(["monitor", "--env", "staging"], cwd=project)
    assert r.exit_code == 2
    assert "monitoring.window: 'yesterday' is not a duration" in r.output
    assert "monitoring.on_breach" in r.output and "monitoring.retrain.span" in r.output

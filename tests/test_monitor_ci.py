"""The scheduled CI job runs the monitor and its action: gitlab-ci-local runs the repository's
`.gitlab-ci.yml` `monitor` job (shell executor, a bare `origin`) on a project whose staging
receives drifted traffic while new observations arrived in the source; the job fails with
exit 7, retrains, pushes the commit (ci.skip), registers and deploys the new version, and
keeps the HTML report as an artifact."""

from __future__ import annotations

import pytest
import yaml

from mlops import api
from mlops.deploy.target import Target
from mlops.pipeline.records import RunStore
from tests.helpers import commit_all, git
from tests.monitor_helpers import group, serve_rows
from tests.registry_helpers import NAME, refs
from tests.test_cicd_e2e import gcl, tools, with_ci  # noqa: F401 (tools: a fixture)

pytestmark = [pytest.mark.slow, pytest.mark.e2e]
SCHEDULE = {"CI_PIPELINE_SOURCE": "schedule", "MLOPS_MONITOR_ENV": "staging"}


def test_the_scheduled_job_monitors_retrains_and_deploys(tools, trained, tmp_path):  # noqa: F811
    root, origin = with_ci(trained, tmp_path)
    path = root / "pipeline.yaml"
    data = yaml.safe_load(path.read_text())
    data["monitoring"] = {"on_breach": "retrain", "retrain": {"deploy": "staging"}}
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    commit_all(root, "Monitoring retrains on a breach")
    git(root, "push", "-q", "origin", "main")
    assert api.register(root, push=True).version == "v0.0.1"
    assert api.deploy(root, "staging", push=True).version == "v0.0.1"
    staging = Target(root / ".mlops/envs/staging")

    # the live traffic comes from another island; new observations land in the source
    rows, labels = group("Dream", n=120, seed=21)
    serve_rows(staging.current_dir(), staging.predictions_dir, rows, labels, version="v0.0.1")
    source = root / "data/source/penguins.csv"
    lines = source.read_text().splitlines()
    dream = [ln for ln in lines[1:] if ",Dream," in ln]
    source.write_text("\n".join(lines + dream) + "\n")
    commit_all(root, "New observations from Dream")
    git(root, "push", "-q", "origin", "main")

    proc = gcl(root, "monitor", variables=SCHEDULE)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "FAIL  monitor" in out, out[-4000:]  # exit 7: a breach
    assert "BREACH: input drift" in out and "action: retrain (done)" in out, out[-4000:]
    assert "registered penguins-classifier@v0.0.2" in out
    assert (root / "reports/monitor.html").read_text().count("<svg") >= 5

    pushed = (origin / "push-log.txt").read_text()
    assert "option: ci.skip" in pushed  # the retrain's commit starts no pipeline of its own
    assert git(origin, "log", "-1", "--format=%s", "main").startswith(f"Retrain {NAME}")
    assert f"refs/tags/{NAME}@v0.0.2" in refs(origin)
    assert staging.current_version() == "v0.0.2"
    (retrain,) = RunStore(root).list(kind="retrain")
    assert retrain.outcome == "ok" and "input drift" in retrain.extra["reason"]
    (monitor,) = RunStore(root).list(kind="monitor")
    assert monitor.outcome == "breach" and monitor.extra["action"]["status"] == "done"

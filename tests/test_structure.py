"""The structure holds: lineage lists deployments from readers passed explicitly (no import-time
registration), `mlops.api` loads no domain package until a function is called, and the rule that
turns a report into an exit code lives on the report."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from mlops.errors import ExitCode
from tests.registry_helpers import NAME, register_by_hand


def test_lineage_lists_the_deployments_its_readers_find_and_none_without(project: Path):
    from mlops.registry.lineage import lineage

    register_by_hand(project, "v0.0.1")
    seen: list[tuple[Path, str, str]] = []

    def reader(root: Path, name: str, version: str) -> list[dict]:
        seen.append((Path(root), name, version))
        return [{"env": "staging", "version": version, "at": "2026-01-01T00:00:00+00:00"}]

    assert lineage(project, f"{NAME}@v0.0.1").deployments == []
    found = lineage(project, f"{NAME}@v0.0.1", deployment_readers=[reader, reader])
    assert [d["env"] for d in found.deployments] == ["staging", "staging"]
    assert seen == [(project, NAME, "v0.0.1")] * 2


def test_api_lineage_passes_the_deploy_reader_in_a_fresh_process(project: Path):
    """Nothing has imported mlops.deploy before the call: the reader is still consulted."""
    register_by_hand(project, "v0.0.1")
    target = project / ".mlops" / "envs" / "staging"
    code = (
        "import json, sys\n"
        "from mlops import api\n"
        "assert 'mlops.deploy.envs' not in sys.modules\n"
        "readers = api.deployment_readers()\n"
        "print(json.dumps({'readers': [f'{r.__module__}.{r.__name__}' for r in readers],\n"
        f"  'deployments': api.lineage({str(project)!r}, {NAME + '@v0.0.1'!r}).deployments}}))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=project, check=False
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["readers"] == ["mlops.deploy.envs.deployment_records"]
    assert out["deployments"] == []  # nothing deployed yet
    assert not target.exists()


def test_importing_the_api_loads_no_domain_package():
    code = (
        "import sys\n"
        "import mlops.api\n"
        "domain = ('monitor', 'serve', 'deploy', 'stages', 'pipeline', 'engine', 'registry',\n"
        "          'data', 'reports', 'bundle', 'config')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[:2][-1] in domain\n"
        "             and m.startswith('mlops.')))\n"
        "print(sorted(m for m in ('pandas', 'sklearn', 'dvc', 'pydantic', 'fastapi')\n"
        "             if m in sys.modules))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.splitlines() == ["[]", "[]"], proc.stdout


def test_validation_report_says_its_exit_code():
    from mlops.data.schema import Failure
    from mlops.data.validation import ValidationReport

    ok = ValidationReport("new.csv", None, rows=3, columns=2, failures=[], profile={})
    assert ok.error() is None and ok.exit_code == 0
    bad = Failure(column="x", check="in_range", count=1, examples=[9], rows=[2])
    invalid = ValidationReport("new.csv", None, rows=3, columns=2, failures=[bad], profile={})
    error = invalid.error()
    assert error is not None and error.message == "new.csv: invalid data"
    assert invalid.exit_code == ExitCode.DATA_VALIDATION == error.exit_code


def test_monitor_report_says_its_exit_code():
    from mlops.monitor.checks import Breach, MonitorReport
    from mlops.monitor.window import Window

    window = Window(0.0, 60.0, "last 1m")
    quiet = MonitorReport("production", NAME, "v0.0.1", window, log={})
    assert quiet.error() is None and quiet.exit_code == 0
    breach = Breach("health", "error rate 0.2 > 0.05")
    loud = MonitorReport("production", NAME, "v0.0.1", window, log={}, breaches=[breach])
    loud.action = {"kind": "rollback", "status": "done"}
    error = loud.error()
    assert error is not None
    assert error.message == "monitoring breach in production; action rollback: done"
    assert loud.exit_code == ExitCode.MONITOR_BREACH == 7

"""`mlops watch` / `mlops run --if-new-data`: retrain on new data, and only then."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from mlops.config import load_project
from mlops.deploy.target import Target
from mlops.monitor.trigger import _file_changed, check_sources
from tests.helpers import commit_all, git


def _state(root: Path) -> tuple[str, str, str, int]:
    """HEAD, every ref, the work tree's status and the size of the run index."""
    db = root / ".mlops/runs.db"
    return (
        git(root, "rev-parse", "HEAD"),
        git(root, "for-each-ref", "--format=%(refname) %(objectname)"),
        git(root, "status", "--porcelain", "--untracked-files=all"),
        db.stat().st_size if db.exists() else 0,
    )


@pytest.mark.slow
def test_retrains_on_a_new_file_and_not_otherwise(trained: Path, cli) -> None:
    before = _state(trained)
    r = cli(["watch", "--json"], cwd=trained)
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert out["new_data"] is False and out["action"] is None
    assert out["checks"][0]["kind"] == "file" and "same bytes" in out["checks"][0]["reason"]
    assert _state(trained) == before  # nothing written
    r = cli(["run", "--if-new-data"], cwd=trained)
    assert r.exit_code == 0 and "nothing to do" in r.output, r.output
    assert _state(trained) == before

    source = trained / "data/source/penguins.csv"
    lines = source.read_text().splitlines(keepends=True)
    source.write_text("".join(lines + lines[1:41]))  # 40 more rows arrived
    commit_all(trained, "New penguins")
    r = cli(["watch", "--dry-run", "--json"], cwd=trained)
    assert r.exit_code == 0 and json.loads(r.output)["new_data"] is True
    head = git(trained, "rev-parse", "HEAD")
    r = cli(["watch", "--no-push"], cwd=trained)
    assert r.exit_code == 0, r.output
    assert "new data" in r.output and "retrain: done" in r.output
    assert git(trained, "rev-parse", "HEAD~1") == head  # the results commit
    assert "v0.0.1" in git(trained, "tag", "--list")
    assert Target(trained / ".mlops/envs/staging").current_version() == "v0.0.1"
    runs = json.loads(cli(["runs", "list", "--json"], cwd=trained).output)
    assert runs[0]["kind"] in ("retrain", "deploy") and any(x["kind"] == "retrain" for x in runs)

    after = _state(trained)
    r = cli(["watch"], cwd=trained)
    assert r.exit_code == 0 and "no new data" in r.output, r.output
    assert _state(trained) == after


def test_packaged_datasets_are_never_new_and_spans_look_past_their_end(project: Path) -> None:
    path = project / "pipeline.yaml"
    data = yaml.safe_load(path.read_text())
    data["stages"]["ingest"]["with"]["source"] = "package:palmerpenguins"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    [check] = check_sources(load_project(project))
    assert (check.kind, check.new) == ("package", False)

    data["stages"]["ingest"]["with"]["source"] = "data/source/penguins.csv"
    data["stages"]["ingest"]["with"]["span"] = {"column": "year", "from": 2007, "to": 2008}
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    [check] = check_sources(load_project(project))
    assert (check.kind, check.new) == ("span", True) and "2009" in check.reason
    data["stages"]["ingest"]["with"]["span"]["to"] = 2009
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    [check] = check_sources(load_project(project))
    assert (check.kind, check.new) == ("span", False)


def test_files_and_directories_against_the_lock(tmp_path: Path) -> None:
    f = tmp_path / "data.csv"
    f.write_text("a\n1\n")
    assert _file_changed(f, None)[0]  # never read: new
    entry = {"md5": "d1b5b4a3a87a2e2f8c0ab3e09a0fa0ef", "size": 4}
    assert _file_changed(f, entry)[0]  # same size, other bytes
    import hashlib

    entry["md5"] = hashlib.md5(f.read_bytes()).hexdigest()
    assert not _file_changed(f, entry)[0]
    d = tmp_path / "parts"
    d.mkdir()
    (d / "p1.csv").write_text("a\n1\n")
    assert not _file_changed(d, {"nfiles": 1, "size": 4, "md5": "x.dir"})[0]
    (d / "p2.csv").write_text("a\n2\n")
    changed, reason = _file_changed(d, {"nfiles": 1, "size": 4, "md5": "x.dir"})
    assert changed and "2 files" in reason

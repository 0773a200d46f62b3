"""Baselines for `not_worse_than:` gates: the metrics of a git branch or of an environment.

`mlops run` resolves every baseline named in the evaluate stage's gates before DVC runs, and
writes them to `reports/baseline.json` (a dependency of the evaluate stage, rewritten only when
its content changes). So evaluate reruns exactly when a baseline moved, `dvc repro` alone still
works, and the run is reproducible from what the file records.

A baseline name is an environment of `pipeline.yaml` (`production`: the version deployed there)
or else a git ref: a branch (`main`, falling back to `origin/main` in CI clones), a tag or a
commit. Its metrics are the evaluate stage's metrics file as committed at that commit, and its
`bundle` is the model bundle's DVC hash at that commit (from that commit's `dvc.lock`): evaluate
fetches that bundle and scores it on the challenger's test rows (`mlops.stages.paired`), and the
hash in the file makes DVC rerun evaluate exactly when the baseline model changed. An
environment's entry names the version's registration tag (`NAME@vX.Y.Z`), not the stage tag
that put it there: moving a stage tag to the same version changes nothing in the file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops.adapters import git
from mlops.config import limits
from mlops.config.yamlfile import atomic_write_text

if TYPE_CHECKING:  # the no-op run checks baselines without loading the config models
    from mlops.config import Project


def stage_holder(root: Path, model: str, environment: str) -> tuple[str | None, str | None]:
    """The commit and stage tag of the version of `model` in `environment` (the registry)."""
    from mlops.registry import read_registry

    artifact = read_registry(root).get(model)
    holder = artifact.in_stage(environment) if artifact else None
    return (holder.commit, holder.tag) if holder else (None, None)


def environment_commit(project: Project, environment: str) -> tuple[str | None, str, str | None]:
    """The commit of the model version in `environment`, a note when there is none, and the
    version's registration tag (`NAME@vX.Y.Z`: stable while the same version stays there; the
    registry, git tags in GTO's format, is the one source)."""
    from mlops.registry import read_registry

    name = project.pipeline.model.name
    artifact = read_registry(project.root).get(name)
    holder = artifact.in_stage(environment) if artifact else None
    if holder is None:
        return None, f"no version of {name} in {environment} yet", None
    return holder.commit, "", f"{name}@{holder.version}"


def bundle_at(project: Project, commit: str) -> dict[str, Any] | None:
    """`{path, md5}` of the model bundle as `dvc.lock` at `commit` records it (None if none)."""
    import yaml

    path = project.pipeline.model.path.rstrip("/")
    text = git.show_file(project.root, commit, "dvc.lock")
    if text is None:
        return None
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError:
        return None
    stages = data.get("stages") if isinstance(data, dict) else None
    for stage in (stages or {}).values() if isinstance(stages, dict) else []:
        outs = stage.get("outs") if isinstance(stage, dict) else None
        for out in outs if isinstance(outs, list) else []:
            if isinstance(out, dict) and str(out.get("path", "")).rstrip("/") == path:
                md5 = out.get("md5")
                return {"path": path, "md5": str(md5)} if isinstance(md5, str) else None
    return None


def ref_commit(root: Path, name: str) -> tuple[str | None, str | None]:
    """A branch (local, then `origin/`), tag or commit: its commit and the ref that matched."""
    for ref in (f"refs/heads/{name}", f"refs/remotes/origin/{name}", name):
        commit = git.rev_parse(root, ref)
        if commit:
            return commit, ref
    return None, None


def current_commit(root: Path, entry: dict[str, Any], model: str) -> str | None:
    """Where a recorded baseline entry (from the baseline file) points now."""
    if entry.get("kind") == "environment":
        return stage_holder(root, model, entry["name"])[0]
    return ref_commit(root, entry["name"])[0]


def _metrics_at(project: Project, commit: str, path: str) -> dict[str, Any] | None:

    text = git.show_file(project.root, commit, path)
    if text is None:
        return None
    try:
        data = json.loads(text) if path.endswith(".json") else limits.safe_load(text, path)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    return {k: v for k, v in data.items() if isinstance(v, int | float) and not isinstance(v, bool)}


def resolve_baseline(project: Project, name: str, metrics_path: str) -> dict[str, Any]:
    """`{name, kind, ref, commit, metrics, note}` for one baseline; `metrics` None if none yet."""
    entry: dict[str, Any] = {
        "name": name,
        "ref": None,
        "commit": None,
        "metrics": None,
        "bundle": None,
    }
    if name in project.pipeline.environments:
        entry["kind"] = "environment"
        commit, note, entry["ref"] = environment_commit(project, name)
    else:
        entry["kind"] = "branch"
        commit, ref = ref_commit(project.root, name)
        entry["ref"] = ref
        note = "" if commit else f"no branch, tag or commit named {name!r}"
    entry["commit"] = commit
    if commit:
        entry["metrics"] = _metrics_at(project, commit, metrics_path)
        entry["bundle"] = bundle_at(project, commit)
        missing = entry["metrics"] is None
        note = f"no {metrics_path} at {name} ({commit[:8]}) yet" if missing else ""
    entry["note"] = note
    return entry


def stage_baselines(project: Project, stage: str) -> dict[str, dict[str, Any]]:
    """Every baseline the gates of one evaluate stage name."""
    config = project.pipeline.stages[stage]
    metrics_path = project.stages[stage].args.metrics
    names = sorted({g.not_worse_than for g in config.gates.values() if g.not_worse_than})
    return {n: resolve_baseline(project, n, metrics_path) for n in names}


def write_baselines(project: Project) -> list[str]:
    """Write each evaluate stage's baseline file when its content changed; return those written."""
    written = []
    for name, st in project.stages.items():
        if st.kind != "evaluate" or not st.generated:
            continue
        text = json.dumps(stage_baselines(project, name), indent=2, sort_keys=True) + "\n"
        path = project.path(st.args.baseline)
        try:
            if path.read_text(encoding="utf-8") == text:
                continue
        except OSError:
            pass
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, text)
        written.append(st.args.baseline)
    return written

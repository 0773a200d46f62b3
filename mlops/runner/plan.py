"""Whether a runner pays for itself: only when at least two built-in stages will run.

A runner costs its imports (seconds of CPU) once; it saves them for every built-in stage after
the first it serves. When one stage reruns (a changed gate re-evaluates) the stage's own imports
cost the same as the runner's, and the runner's are extra. So `mlops run` asks DVC's status
first (which stages changed; everything downstream of one reruns with it) and starts a runner
only when two or more built-in stages are on that list. `--force` reruns the whole plan.
"""

from __future__ import annotations

from pathlib import Path

MIN_STAGES = 2  # built-in stages that must run for a runner to be started


def builtin_stages_to_run(
    root: Path | str, targets: list[str] | None = None, *, force: bool = False
) -> int | None:
    """How many built-in stages a run of `targets` (all when None) will run: DVC's changed
    stages and what is downstream of them (`force`: the whole plan). 0 when the config does
    not load or names no such target (the run stops there); None when it cannot tell (a
    dvc.yaml the run will recompile first, DVC refused): then assume all of them."""
    from mlops.config import load_project, stage_graph, topological

    try:
        project = load_project(Path(root))
        plan = topological(project.stages, targets or None)
    except Exception:  # the run stops at the same error before any stage
        return 0
    builtin = {n for n in plan if project.stages[n].kind is not None}
    if force or len(builtin) < MIN_STAGES:
        return len(builtin)
    try:
        from mlops.adapters import dvc
        from mlops.pipeline.compile import compile_dvc_yaml

        if (project.root / "dvc.yaml").read_text(encoding="utf-8") != compile_dvc_yaml(project):
            return None  # the run recompiles dvc.yaml first: DVC's status of the old one is moot

        # the whole pipeline's status: with targets DVC reports only those, not their upstream
        changed = {str(k).rpartition(":")[2] for k in dvc.status(project.root)}
    except Exception:
        return None
    upstream = stage_graph(project.stages)
    rerun: set[str] = set()
    for name in plan:  # run order: upstream decisions first
        if name in changed or upstream.get(name, set()) & rerun:
            rerun.add(name)
    return len(builtin & rerun)


def worth_a_runner(root: Path | str, targets: list[str] | None = None, *, force: bool) -> bool:
    """True when a run of `targets` will run at least two built-in stages (or may)."""
    count = builtin_stages_to_run(root, targets, force=force)
    return count is None or count >= MIN_STAGES

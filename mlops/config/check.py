"""Load and check `pipeline.yaml` and `params.yaml` together, reporting every problem at once."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from mlops.config import limits, paths
from mlops.config.models import ModelSpec, Params, Pipeline, Stage
from mlops.config.reference import unknown_key_message
from mlops.config.resolve import (
    PARAMS_FILE,
    PIPELINE_FILE,
    ResolvedStage,
    add_implicit_edges,
    is_under,
    resolve_builtin,
    resolve_cmd,
    with_model,
)
from mlops.config.targets import apply_overrides
from mlops.config.yamlfile import Loc, YamlDoc, format_loc, read_yaml
from mlops.errors import ConfigError, ConfigIssue

M = TypeVar("M", bound=BaseModel)


@dataclass
class Project:
    """A checked project: its root, both config files, and the resolved stages in file order."""

    root: Path
    pipeline: Pipeline
    params: Params
    params_raw: dict[str, Any]
    stages: dict[str, ResolvedStage] = field(default_factory=dict)

    def path(self, rel: str) -> Path:
        return self.root / rel


def _issues_from(exc: ValidationError, doc: YamlDoc, prefix: Loc = ()) -> list[ConfigIssue]:
    issues = []
    for err in exc.errors(include_url=False):
        loc = (*prefix, *err["loc"])
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = unknown_key_message(loc, doc.data, params=doc.file == PARAMS_FILE)
        elif msg.startswith("Value error, "):
            msg = msg[len("Value error, ") :]
        elif err["type"] == "missing":
            msg = "required key is missing"
        if err["type"] not in ("missing", "extra_forbidden") and "input" in err:
            shown = repr(err["input"])
            credentials = "://" in shown and "@" in shown  # never echo user:password@
            if len(shown) <= 60 and not isinstance(err["input"], dict | list) and not credentials:
                msg += f" (got {shown})"
        issues.append(ConfigIssue(doc.file, format_loc(loc), msg, doc.line_of(loc)))
    return issues


def _validate(
    model: type[M], data: Any, doc: YamlDoc, prefix: Loc = ()
) -> tuple[M | None, list[ConfigIssue]]:
    try:
        return model.model_validate(data), []
    except ValidationError as exc:
        return None, _issues_from(exc, doc, prefix)


def _lookup(data: Any, dotted: str) -> bool:
    cur = data
    for part in dotted.split("."):
        if isinstance(cur, dict) and part in cur:
            cur = cur[part]
        elif isinstance(cur, list) and part.isdigit() and int(part) < len(cur):
            cur = cur[int(part)]
        else:
            return False
    return True


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle in `stage -> stages it depends on`, as a list of names, or None."""
    color: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        color[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if color.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in color and (found := visit(nxt)):
                return found
        stack.pop()
        color[node] = 2
        return None

    for node in graph:
        if node not in color and (found := visit(node)):
            return found
    return None


def stage_graph(stages: dict[str, ResolvedStage]) -> dict[str, set[str]]:
    """`stage -> set of stages whose outputs it reads`."""
    producers = [(o.path, s.name) for s in stages.values() for o in s.outs]
    graph: dict[str, set[str]] = {name: set() for name in stages}
    for st in stages.values():
        for dep in st.deps:
            for out, producer in producers:
                if producer != st.name and (is_under(dep, out) or is_under(out, dep)):
                    graph[st.name].add(producer)
    return graph


def topological(stages: dict[str, ResolvedStage], names: list[str] | None = None) -> list[str]:
    """Stages in run order (dependencies first); with `names`, those and their upstream only."""
    graph = stage_graph(stages)
    order: list[str] = []
    seen: set[str] = set()

    def visit(n: str) -> None:
        if n in seen:
            return
        seen.add(n)
        for up in sorted(graph[n], key=list(stages).index):
            visit(up)
        order.append(n)

    for n in names or list(stages):
        visit(n)
    return order


def _lenient(model: type[BaseModel], data: Any) -> Any:
    """`data` validated without its invalid keys, so the rest can still be checked (or None)."""
    if not isinstance(data, dict):
        return None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        bad = {e["loc"][0] for e in exc.errors() if e["loc"]}
        if not bad:
            return None
        try:
            return model.model_validate({k: v for k, v in data.items() if k not in bad})
        except ValidationError:
            return None


Issue = Callable[[Loc, str], None]  # reports one problem at a key path of pipeline.yaml


def _semantic(
    root: Path,
    pipeline: Pipeline | None,
    raw: dict[str, Any],
    doc: YamlDoc,
    params_raw: dict[str, Any] | None,
) -> tuple[dict[str, ResolvedStage], list[ConfigIssue]]:
    """Checks that need the whole file; runs on the stages that validated, even if others failed.

    In steps: resolve each stage, then paths (inside the repository), outputs (one writer
    each), dependencies (exist or are produced), params keys (exist), and no cycle."""
    issues: list[ConfigIssue] = []

    def issue(loc: Loc, msg: str) -> None:
        issues.append(ConfigIssue(doc.file, format_loc(loc), msg, doc.line_of(loc)))

    raw_stages = raw.get("stages") if isinstance(raw, dict) else None
    if not isinstance(raw_stages, dict):
        return {}, issues
    base = pipeline if pipeline is not None else _stand_in(raw)
    resolved, errs = _resolve_stages(raw_stages, base, doc, params_raw, issue, root)
    issues += errs
    if pipeline is not None:
        add_implicit_edges(resolved, pipeline)
    # every path inside the repository, symlinks resolved (mlops.config.paths)
    outside = paths.check_paths(root, raw, resolved, issue)
    owner = _check_outputs(resolved, outside, issue)
    _check_deps(root, resolved, outside, owner, issue)
    _check_params(root, resolved, raw, doc.file, params_raw, issue)
    cycle = _find_cycle(stage_graph(resolved))
    if cycle:
        issue(("stages", cycle[0]), "stages depend on each other in a cycle: " + " -> ".join(cycle))
    return resolved, issues


def _stand_in(raw: dict[str, Any]) -> Pipeline:
    """A pipeline to resolve stages against when another part of the file is invalid."""
    model_raw = raw.get("model")
    if not isinstance(model_raw, dict):
        model_raw = {}
    try:
        spec = ModelSpec(name=str(model_raw.get("name")), target=str(model_raw.get("target")))
    except ValidationError:
        spec = ModelSpec(name="model", target="")
    return Pipeline.model_construct(model=spec, stages={})


def _resolve_stages(
    raw_stages: dict[str, Any],
    base: Pipeline,
    doc: YamlDoc,
    params_raw: dict[str, Any] | None,
    issue: Issue,
    root: Path,
) -> tuple[dict[str, ResolvedStage], list[ConfigIssue]]:
    """Each stage that validates, resolved (built-ins with their `with:` checked); `after:`
    names checked. Returns the `with:` validation issues too."""
    resolved: dict[str, ResolvedStage] = {}
    issues: list[ConfigIssue] = []
    for name, data in raw_stages.items():
        stage = _lenient(Stage, data)
        if stage is None:
            continue  # already reported by the whole-file validation
        wm = with_model(stage)
        if wm is not None:
            args, errs = _validate(wm, stage.with_, doc, ("stages", name, "with"))
            issues += errs
            args = args or _lenient(wm, stage.with_)
            if args is None:
                continue
            resolved[name] = resolve_builtin(name, stage, args, base, params_raw, root)
        else:
            resolved[name] = resolve_cmd(name, stage)
        for i, other in enumerate(stage.after):
            if other not in raw_stages:
                issue(("stages", name, "after", i), f"unknown stage {other!r}")
            elif other == name:
                issue(("stages", name, "after", i), "a stage cannot run after itself")
    return resolved, issues


def _check_outputs(
    resolved: dict[str, ResolvedStage], outside: set[str], issue: Issue
) -> list[tuple[str, str]]:
    """Each output written by one stage only; returns (output, stage) for every output."""
    owner: list[tuple[str, str]] = []
    for st in resolved.values():
        for out in st.outs:
            if out.path in outside:
                continue
            for path, other in owner:
                if is_under(out.path, path) or is_under(path, out.path):
                    what = "is also" if path == out.path else f"overlaps {path!r},"
                    issue(
                        ("stages", st.name),
                        f"output {out.path!r} {what} written by stage {other!r}",
                    )
                    break
            else:
                owner.append((out.path, st.name))
    return owner


def _check_deps(
    root: Path,
    resolved: dict[str, ResolvedStage],
    outside: set[str],
    owner: list[tuple[str, str]],
    issue: Issue,
) -> None:
    """Every dependency exists on disk or comes from another stage."""
    for st in resolved.values():
        for dep in st.deps:
            if dep in outside or paths.is_url(dep) or dep in st.generated:
                continue  # refused above, a URL, or written by mlops
            produced = any(is_under(dep, p) or is_under(p, dep) for p, _ in owner)
            if not produced and not (root / dep).exists():
                issue(
                    ("stages", st.name),
                    f"dependency {dep!r} does not exist and no stage produces it",
                )


def _check_params(
    root: Path,
    resolved: dict[str, ResolvedStage],
    raw: dict[str, Any],
    pipeline_file: str,
    params_raw: dict[str, Any] | None,
    issue: Issue,
) -> None:
    """Every params key a stage depends on exists in its file."""
    for st in resolved.values():
        for entry in st.params:
            pairs = [("params.yaml", entry)] if isinstance(entry, str) else list(entry.items())
            for file, keys in pairs:
                data = _params_data(root, file, raw, pipeline_file, params_raw)
                if data is _MISSING:
                    issue(("stages", st.name, "params"), f"params file {file!r} does not exist")
                    continue
                if data is None:
                    continue
                for key in [keys] if isinstance(keys, str) else keys:
                    if not _lookup(data, key):
                        issue(("stages", st.name, "params"), f"{file} has no key {key!r}")


_MISSING = object()


def _params_data(
    root: Path,
    file: str,
    raw: dict[str, Any],
    pipeline_file: str,
    params_raw: dict[str, Any] | None,
) -> Any:
    """The parsed params `file` (None when unreadable; `_MISSING` when it does not exist)."""
    if file in (PARAMS_FILE, "params.yaml"):
        return params_raw
    if file == pipeline_file:
        return raw
    if not (root / file).exists():
        return _MISSING
    try:
        return read_yaml(root / file, with_lines=False).data
    except ConfigError:
        return None


def load_params(
    root: Path,
) -> tuple[Params | None, dict[str, Any] | None, list[ConfigIssue], YamlDoc | None]:
    path = root / PARAMS_FILE
    if not path.exists():
        return Params(), {}, [], None
    try:
        doc = read_yaml(path, display=PARAMS_FILE)
    except ConfigError as exc:  # unreadable or refused (mlops.config.limits): no keys to check
        return None, None, exc.issues, None
    data = doc.data if doc.data is not None else {}
    if not isinstance(data, dict):
        return None, {}, [ConfigIssue(PARAMS_FILE, "", "must be a mapping of sections", 1)], doc
    params, issues = _validate(Params, data, doc)
    return params, data, doc.issues + issues, doc


def load_project(root: Path | str = ".") -> Project:
    """Read, validate and resolve both config files; raise `ConfigError` listing every problem."""
    root = Path(root).resolve()
    path = root / PIPELINE_FILE
    if not path.exists():
        raise ConfigError(
            [ConfigIssue(PIPELINE_FILE, "", f"not found in {root}")],
            hint="Run `mlops init` to create a project, or run mlops from the project's root.",
        )
    issues: list[ConfigIssue] = []
    doc = read_yaml(path, display=PIPELINE_FILE)
    issues += doc.issues
    raw = doc.data if doc.data is not None else {}
    pipeline = None
    if not isinstance(raw, dict):
        issues.append(
            ConfigIssue(PIPELINE_FILE, "", "must be a mapping (version, model, stages)", 1)
        )
    else:
        pipeline, errs = _validate(Pipeline, raw, doc)
        issues += errs
    params, params_raw, perrs, _ = load_params(root)
    issues += perrs
    issues += limits.check_files(root)  # DVC parses these itself, in-process: refuse bombs first
    stages, serrs = _semantic(root, pipeline, raw if isinstance(raw, dict) else {}, doc, params_raw)
    issues += serrs
    if issues or pipeline is None or params is None or params_raw is None:
        raise ConfigError(issues)
    pipeline = apply_overrides(pipeline)  # MLOPS_TARGET_<ENV>, MLOPS_TARGETS (CI, pods)
    return Project(root, pipeline, params, params_raw, stages)


def load_pipeline(root: Path | str = ".") -> Pipeline:
    """pipeline.yaml alone, validated by its model (no file-system checks, no params.yaml).

    For commands that only read settings — `mlops serve --env` on a host that has the project's
    git checkout but none of its data — where `load_project`'s checks would refuse to start.
    """
    root = Path(root).resolve()
    path = root / PIPELINE_FILE
    if not path.exists():
        raise ConfigError(
            [ConfigIssue(PIPELINE_FILE, "", f"not found in {root}")],
            hint="Run mlops from the project's root (or give --bundle PATH).",
        )
    doc = read_yaml(path, display=PIPELINE_FILE)
    issues = list(doc.issues)
    pipeline = None
    if isinstance(doc.data, dict):
        pipeline, errs = _validate(Pipeline, doc.data, doc)
        issues += errs
    else:
        issues.append(
            ConfigIssue(PIPELINE_FILE, "", "must be a mapping (version, model, stages)", 1)
        )
    if issues or pipeline is None:
        raise ConfigError(issues)
    return apply_overrides(pipeline)  # MLOPS_TARGET_<ENV>, MLOPS_TARGETS (CI, pods)

"""Limits on every YAML file mlops reads: size, alias expansion and nesting depth.

A YAML file is text a colleague (or an attacker with a merge request) controls. Three shapes of
it take a reader down: a huge file (parsing 100 MB of YAML takes minutes and gigabytes), an alias
bomb ("billion laughs": a few hundred bytes whose aliases of aliases expand to 10^9 nodes as soon
as anything walks the document: mlops' line map, pydantic, DVC's params flattening) and a
recursive alias (an anchor used inside itself). So before anything walks a document:

- the file must be a regular file of at most `max_bytes()` (4 MiB, or `MLOPS_YAML_MAX_BYTES`);
  at most that many bytes (+1) are ever read, so `/dev/zero` or a growing file cannot hold us;
- the node graph is composed (aliases stay shared, linear in the text) and its expanded size
  counted once per distinct node: aliases may add at most `MAX_ALIAS_NODES` nodes;
- nesting is at most `MAX_DEPTH` levels (libyaml itself stops at 1,000).

Refusals are `ConfigError`s (exit 2) naming the file and saying what to do. This module imports
only PyYAML, so every reader of YAML (config, pipeline, registry, reports) can use it.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import yaml

from mlops.errors import ConfigError, ConfigIssue

try:  # the C loader is ~10x faster and refuses nesting deeper than 1,000 while scanning
    Loader: type = yaml.CSafeLoader
except AttributeError:  # pragma: no cover
    Loader = yaml.SafeLoader

MAX_BYTES = 4 * 1024 * 1024
MAX_BYTES_ENV = "MLOPS_YAML_MAX_BYTES"
MAX_ALIAS_NODES = 100_000
MAX_DEPTH = 100

_HINT_SIZE = (
    "Keep data out of YAML files (DVC tracks data files: list them under a stage's `deps`). If "
    f"this file really must be larger, raise the limit with {MAX_BYTES_ENV}=BYTES."
)
_HINT_ALIAS = (
    "Write the repeated values out, or use fewer levels of aliases of aliases; an anchor may "
    "not be used inside itself."
)


def max_bytes() -> int:
    """The size limit in bytes: `MLOPS_YAML_MAX_BYTES` when set to a positive integer."""
    raw = os.environ.get(MAX_BYTES_ENV, "").strip()
    if raw.isdigit() and int(raw) > 0:
        return int(raw)
    return MAX_BYTES


def _size(n: int) -> str:
    return f"{n / 1024 / 1024:.1f} MiB" if n >= 1024 * 1024 else f"{n} bytes"


def _refuse(name: str, message: str, hint: str, line: int | None = None) -> ConfigError:
    # what to do goes into the issue too: `mlops check` lists issues of several files at once
    return ConfigError([ConfigIssue(name, "", f"{message}. {hint}", line)], hint=hint)


def read_text(path: Path, name: str | None = None) -> str:
    """The UTF-8 text of YAML file `path`, refused (`ConfigError`) when it is not a regular
    file, is larger than `max_bytes()`, or is not UTF-8. `FileNotFoundError` passes through."""
    name = name or Path(path).name
    limit = max_bytes()
    with open(path, "rb") as fh:  # a FIFO would block here only if it had no writer: refuse
        info = os.fstat(fh.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise _refuse(name, "is not a regular file", "Replace it with a plain YAML file.")
        if info.st_size > limit:
            raise _refuse(
                name,
                f"is {_size(info.st_size)}; mlops reads YAML files of at most {_size(limit)}",
                _HINT_SIZE,
            )
        data = fh.read(limit + 1)
    if len(data) > limit:  # grew while we looked
        raise _refuse(name, f"is larger than {_size(limit)}", _HINT_SIZE)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _refuse(
            name, f"is not UTF-8 text (byte {exc.start})", "Save the file as UTF-8."
        ) from None


def check_text_size(text: str, name: str) -> None:
    """Refuse YAML text (e.g. read from git history) longer than the size limit."""
    limit = max_bytes()
    if len(text) > limit:
        raise _refuse(
            name, f"is {_size(len(text))}; mlops reads YAML of at most {_size(limit)}", _HINT_SIZE
        )


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def check_node(node: yaml.Node | None, name: str) -> None:
    """Refuse a composed document whose aliases expand it by more than `MAX_ALIAS_NODES` nodes,
    that nests deeper than `MAX_DEPTH`, or that uses an anchor inside itself.

    Counts the expanded size once per distinct node (memoised, iterative): linear in the text
    even for a billion-laughs document.
    """
    if node is None:
        return
    expanded: dict[int, int] = {}  # id(node) -> nodes in its expansion (itself included)
    depth: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(node, False)]
    while stack:
        current, done = stack.pop()
        key = id(current)
        if done:
            kids = _children(current)
            expanded[key] = 1 + sum(expanded[id(k)] for k in kids)
            depth[key] = 1 + max((depth[id(k)] for k in kids), default=0)
            on_path.discard(key)
            if depth[key] > MAX_DEPTH:
                line = current.start_mark.line + 1
                raise _refuse(
                    name,
                    f"nests deeper than {MAX_DEPTH} levels",
                    "Flatten the structure; mlops' files never need this depth.",
                    line,
                )
            continue
        if key in expanded:
            continue
        if key in on_path:
            raise _refuse(
                name,
                "an anchor is used inside itself (a recursive alias)",
                _HINT_ALIAS,
                current.start_mark.line + 1,
            )
        on_path.add(key)
        stack.append((current, True))
        for kid in reversed(_children(current)):
            if id(kid) not in expanded:
                stack.append((kid, False))
    added = expanded[id(node)] - len(expanded)
    if added > MAX_ALIAS_NODES:
        raise _refuse(
            name,
            f"its aliases expand it by {added:,} nodes (at most {MAX_ALIAS_NODES:,} allowed): "
            "an alias bomb",
            _HINT_ALIAS,
        )


def compose_checked(text: str, name: str) -> tuple[Any, yaml.Node | None]:
    """Parse YAML text within the limits: (data, root node). `ConfigError` on a refusal or on
    invalid YAML (naming the line)."""
    check_text_size(text, name)
    try:
        loader = Loader(text)
        try:
            node = loader.get_single_node()
            check_node(node, name)
            data = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError([ConfigIssue(name, "", f"invalid YAML: {problem}", line)]) from None
    return data, node


def safe_load(text: str, name: str) -> Any:
    """`yaml.safe_load` within the limits (size, aliases, depth); `ConfigError` otherwise."""
    return compose_checked(text, name)[0]


def load_file(path: Path, name: str | None = None) -> Any:
    """A YAML file's data within the limits. `FileNotFoundError`/`OSError` pass through."""
    name = name or Path(path).name
    return safe_load(read_text(path, name), name)


def check_files(root: Path, names: tuple[str, ...] = ("dvc.yaml", "dvc.lock")) -> list[ConfigIssue]:
    """Problems (limits or syntax) of the YAML files DVC parses itself, so they are refused
    before DVC is started in-process. Missing files are fine."""
    issues: list[ConfigIssue] = []
    for rel in names:
        try:
            load_file(Path(root) / rel, rel)
        except FileNotFoundError:
            continue
        except OSError as exc:
            issues.append(ConfigIssue(rel, "", f"cannot be read: {exc.strerror}"))
        except ConfigError as exc:
            issues += exc.issues
    return issues

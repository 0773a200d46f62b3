"""YAML reading with line numbers, and atomic YAML/JSON/text writes."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import yaml

from mlops.config import limits
from mlops.errors import ConfigError, ConfigIssue

try:  # the C loader is ~10x faster; fall back when libyaml is missing
    _Loader: type = yaml.CSafeLoader
    _Dumper: type = yaml.CSafeDumper
except AttributeError:  # pragma: no cover
    _Loader = yaml.SafeLoader
    _Dumper = yaml.SafeDumper

Loc = tuple[str | int, ...]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_umask()


def _new_temp(path: Path, suffix: str = ".tmp") -> tuple[int, str]:
    """A temp file beside `path` with the permissions a plain `open()` would give it."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.fchmod(fd, _FILE_MODE)
    return fd, tmp


class YamlDoc:
    """A parsed YAML document plus the line of every key and list item (1-based)."""

    def __init__(self, file: str, data: Any, lines: dict[Loc, int], issues: list[ConfigIssue]):
        self.file = file
        self.data = data
        self.lines = lines
        self.issues = issues  # structural problems found while reading (duplicate keys)

    def line_of(self, loc: Loc) -> int | None:
        """Line of `loc`, or of its nearest parent that has one."""
        loc = tuple(loc)
        while loc:
            if loc in self.lines:
                return self.lines[loc]
            loc = loc[:-1]
        return self.lines.get((), None)


def format_loc(loc: Loc) -> str:
    """`("stages", "train", "params", 0)` -> `stages.train.params[0]`."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _walk(
    node: yaml.Node, loc: Loc, lines: dict[Loc, int], issues: list[ConfigIssue], file: str
) -> None:
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = key_node.value
            sub = (*loc, key)
            if key in seen:
                issues.append(
                    ConfigIssue(
                        file,
                        format_loc(sub),
                        "duplicate key (YAML keeps only the last one); remove one of them",
                        key_node.start_mark.line + 1,
                    )
                )
            seen.add(key)
            lines[sub] = key_node.start_mark.line + 1
            _walk(value_node, sub, lines, issues, file)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            sub = (*loc, i)
            lines[sub] = item.start_mark.line + 1
            _walk(item, sub, lines, issues, file)


def read_yaml(path: Path, *, display: str | None = None, with_lines: bool = True) -> YamlDoc:
    """Read a YAML file within `mlops.config.limits` (size, aliases, depth). Syntax errors and
    refusals become a `ConfigError` naming file and line."""
    name = display or path.name
    try:
        text = limits.read_text(path, name)
    except FileNotFoundError:
        raise ConfigError([ConfigIssue(name, "", "file not found")]) from None
    except OSError as exc:
        raise ConfigError([ConfigIssue(name, "", f"cannot be read: {exc.strerror}")]) from None
    data, node = limits.compose_checked(text, name)
    lines: dict[Loc, int] = {}
    issues: list[ConfigIssue] = []
    if with_lines and node is not None:
        lines[()] = node.start_mark.line + 1
        _walk(node, (), lines, issues, name)
    return YamlDoc(name, data, lines, issues)


def new_temp(path: Path, suffix: str = ".tmp") -> tuple[int, str]:
    """Public alias of `_new_temp` for writers that fill the file themselves."""
    return _new_temp(Path(path), suffix)


def atomic_write_text(path: Path, text: str) -> None:
    """Write `text` (UTF-8) to `path` atomically: a temp file beside it, fsync, rename."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` atomically: a temp file in the same directory, fsync, rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _new_temp(path)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def dump_yaml(data: Any) -> str:
    """YAML text with keys in insertion order and block style."""
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=100)


def write_yaml(path: Path, data: Any, header: str = "") -> None:
    atomic_write_text(path, header + dump_yaml(data))


def write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")

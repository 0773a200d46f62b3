"""Deterministic skops archives: the same fitted estimator gives the same bytes, every time.

`skops.io.dumps` names each array member of its zip after the Python `id()` of the array, records
those ids (`__id__`) in `schema.json` for shared references, and stamps every member with the wall
clock, so two dumps of one estimator differ. `dumps` here rewrites the archive: ids are renumbered
1, 2, 3... and member files 0001.npy, 0002.npy... in the order `schema.json` first mentions them
(a depth-first walk of the object tree, which only depends on the estimator), members are written
in name order with a fixed timestamp and permissions, and the schema is dumped with a fixed layout.
Shared references keep working: a `CachedNode` names the same renumbered id as the node it points
to. `skops.io.load` reads the result like any skops file.
"""

from __future__ import annotations

import io
import json
import zipfile
from typing import Any

SCHEMA = "schema.json"
EPOCH = (1980, 1, 1, 0, 0, 0)  # the earliest time a zip entry can hold
MODE = 0o644 << 16


class _Renumber:
    def __init__(self) -> None:
        self.ids: dict[Any, int] = {}
        self.files: dict[str, str] = {}

    def id_for(self, old: Any) -> int:
        # start at 1: skops only memoizes truthy ids
        return self.ids.setdefault(old, len(self.ids) + 1)

    def file_for(self, old: str) -> str:
        if old not in self.files:
            ext = old.rsplit(".", 1)[1] if "." in old else "bin"
            self.files[old] = f"{len(self.files) + 1:04d}.{ext}"
        return self.files[old]

    def walk(self, node: Any) -> Any:
        if isinstance(node, list):
            return [self.walk(v) for v in node]
        if not isinstance(node, dict):
            return node
        out: dict[str, Any] = {}
        for key, value in node.items():
            if key == "__id__" and isinstance(value, int) and not isinstance(value, bool):
                out[key] = self.id_for(value)
            elif key == "file" and isinstance(value, str) and "__loader__" in node:
                out[key] = self.file_for(value)
            else:
                out[key] = self.walk(value)
        return out


def canonical(data: bytes) -> bytes:
    """The deterministic form of a skops archive (bytes of a zip written by skops)."""
    with zipfile.ZipFile(io.BytesIO(data)) as src:
        names = set(src.namelist())
        if SCHEMA not in names:
            raise ValueError(f"not a skops archive: no {SCHEMA}")
        schema = json.loads(src.read(SCHEMA))
        renumber = _Renumber()
        schema = renumber.walk(schema)
        missing = sorted(set(renumber.files) - names)
        if missing:
            raise ValueError(f"skops archive refers to missing members: {', '.join(missing)}")
        members = {new: src.read(old) for old, new in renumber.files.items()}
    members[SCHEMA] = (json.dumps(schema, indent=2, sort_keys=False) + "\n").encode()
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as dst:
        for name in [SCHEMA, *sorted(n for n in members if n != SCHEMA)]:
            info = zipfile.ZipInfo(name, date_time=EPOCH)
            info.compress_type = zipfile.ZIP_STORED
            info.external_attr = MODE
            info.create_system = 3  # unix, whatever the platform
            dst.writestr(info, members[name])
    return out.getvalue()


def dumps(obj: Any) -> bytes:
    """`skops.io.dumps(obj)`, made deterministic (see the module's docstring)."""
    import skops.io as sio

    return canonical(sio.dumps(obj))

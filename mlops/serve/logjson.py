"""The prediction log's JSON lines as tables: `parse_bytes`, used by the segment shipper
(`mlops.serve.segments`) and by monitoring's reader (`mlops.monitor.logdata`).

Arrow's JSON reader first (`mlops.serve.logarrow`), the careful parser entry by entry when the
fast one declines (`mlops.serve.logparse`).
"""

from __future__ import annotations

from mlops.serve.logarrow import _parse_arrow
from mlops.serve.logparse import Parsed, _parse_objects


def parse_bytes(data: bytes | memoryview) -> Parsed:
    """Parse complete JSON lines (the caller cuts at the last newline) into tables."""
    import gc

    # millions of live dicts and lists would make the cyclic GC rescan them again and again
    # (JSON objects cannot form cycles): collection is paused while parsing
    paused = gc.isenabled()
    gc.disable()
    try:
        return _parse(data)
    finally:
        if paused:
            gc.enable()


def _parse(data: bytes | memoryview) -> Parsed:
    data = bytes(data)
    fast = _parse_arrow(data)
    return fast if fast is not None else _parse_objects(data)

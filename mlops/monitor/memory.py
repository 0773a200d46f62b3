"""Memory for reading and checking a large log: ordinary 4 KiB pages, not 2 MiB ones.

Reading 1M predictions and checking them allocates a few hundred MB in short-lived buffers.
By default numpy asks the kernel for transparent huge pages (`madvise(MADV_HUGEPAGE)`) for
its large arrays, and pyarrow's default pool is mimalloc. On the 2-core VM of
docs/benchmarks.md the first faults into both were slow: a first analysis of 1M rows spent
0.4-0.7 s of system time with Arrow's default pool and 1.2-1.5 s with numpy's huge pages,
against 0.1 s with the C library's allocator for Arrow and numpy's huge pages off (`getrusage`,
docs/benchmarks.md, "Monitoring from shipped log segments"). `small_pages()` switches both for
the duration of a read or an analysis and restores the previous settings after; where numpy or
pyarrow lack the switch, nothing changes. Buffers remember the pool that allocated them, so
switching is safe while other buffers live; nested blocks and blocks open in other threads share
one switch, which the last block to close restores.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


def _numpy_switch() -> Any:
    import importlib

    for name in ("numpy._core.multiarray", "numpy.core.multiarray"):  # numpy 2, numpy 1
        try:
            return getattr(importlib.import_module(name), "_set_madvise_hugepage", None)
        except ImportError:
            continue
    return None


_LOCK = threading.Lock()
_DEPTH = 0  # blocks open (nested or in other threads): the outermost one switches and restores
_SAVED: list[Any] = []


@contextmanager
def small_pages() -> Iterator[None]:
    """numpy without huge pages and pyarrow's default pool on the C library's allocator for
    the duration of the block (see the module docstring)."""
    global _DEPTH
    import pyarrow as pa

    with _LOCK:
        if _DEPTH == 0:
            switch = _numpy_switch()
            before_np = switch(False) if switch is not None else None
            before_pool = pa.default_memory_pool()
            try:
                pa.set_memory_pool(pa.system_memory_pool())
            except (AttributeError, NotImplementedError, pa.ArrowException):
                before_pool = None
            _SAVED[:] = [switch, before_np, before_pool]
        _DEPTH += 1
    try:
        yield
    finally:
        with _LOCK:
            _DEPTH -= 1
            if _DEPTH == 0:
                switch, before_np, before_pool = _SAVED
                if before_pool is not None:
                    pa.set_memory_pool(before_pool)
                if switch is not None:
                    switch(bool(before_np))

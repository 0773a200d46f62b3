"""`small_pages()`: reading and checking a log on the C allocator and 4 KiB pages, the process's
settings restored after (also when the block raises)."""

from __future__ import annotations

import pyarrow as pa
import pytest

from mlops.monitor.memory import _numpy_switch, small_pages


def test_small_pages_switches_and_restores_both_settings():
    switch = _numpy_switch()
    assert switch is not None  # numpy 1.x and 2.x both have it
    pool_before = pa.default_memory_pool().backend_name
    huge_before = switch(True)
    switch(huge_before)
    with small_pages():
        assert pa.default_memory_pool().backend_name == "system"
        held = pa.array(list(range(1000)))
        assert pa.system_memory_pool().bytes_allocated() >= held.nbytes
        inside = switch(False)
        assert inside is False  # huge pages were off inside the block
    assert pa.default_memory_pool().backend_name == pool_before
    assert switch(huge_before) == huge_before
    with pytest.raises(RuntimeError), small_pages():
        raise RuntimeError("boom")
    assert pa.default_memory_pool().backend_name == pool_before


def test_nested_blocks_restore_once_at_the_outermost():
    pool_before = pa.default_memory_pool().backend_name
    with small_pages():
        with small_pages():
            assert pa.default_memory_pool().backend_name == "system"
        assert pa.default_memory_pool().backend_name == "system"  # still inside the outer one
    assert pa.default_memory_pool().backend_name == pool_before

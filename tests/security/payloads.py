"""Hostile model files, built for real with skops: each runs code (it writes a marker file) when
loaded by a loader that trusts what it names, and names the types mlops must refuse."""

from __future__ import annotations

import builtins
import functools
import io
import json
import operator
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mlops.bundle import write_bundle


def code(marker: Path) -> str:
    """Python source that proves it ran by writing `marker`."""
    return f"open({str(marker)!r}, 'w').write('ran')"


class Evil:
    """A class outside every allowed module: skops rebuilds it with `__setstate__` (code runs)."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __setstate__(self, state: dict) -> None:
        Path(state["marker"]).write_text("ran")
        self.__dict__.update(state)


class Harmless:
    """A project's own (trusted) class: plain data."""

    def __init__(self, factor: float = 2.0) -> None:
        self.factor = factor


class Boom:
    """Unpickling it runs `source` (what a pickle inside the archive would do)."""

    def __init__(self, source: str) -> None:
        self.source = source

    def __reduce__(self) -> tuple:
        return (builtins.exec, (self.source,))


def _head() -> Any:
    from sklearn.dummy import DummyClassifier

    return DummyClassifier().fit([[0.0], [1.0]], ["a", "b"])


def _pipeline(*funcs: Any, **kw: Any) -> Any:
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer

    steps = [
        (f"step{i}", FunctionTransformer(f, **kw.get(f"kw{i}", {}))) for i, f in enumerate(funcs)
    ]
    return Pipeline([*steps, ("model", _head())])


def _dumps(obj: Any) -> bytes:
    import skops.io as sio

    return sio.dumps(obj)


def _pickle_inside(marker: Path) -> bytes:
    """A genuine skops file whose one array member was swapped for a pickled object array."""
    import numpy as np
    from sklearn.preprocessing import StandardScaler

    data = _dumps(StandardScaler().fit([[0.0], [2.0]]))
    src = zipfile.ZipFile(io.BytesIO(data))
    member = next(n for n in src.namelist() if n.endswith(".npy"))
    evil = io.BytesIO()
    arr = np.empty(1, dtype=object)
    arr[0] = Boom(code(marker))
    np.save(evil, arr, allow_pickle=True)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as dst:
        for name in src.namelist():
            dst.writestr(name, evil.getvalue() if name == member else src.read(name))
    return out.getvalue()


def _kinds() -> dict[str, tuple[Callable[[Path], bytes], list[str]]]:
    import numpy as np

    runstring = np.testing._private.utils.runstring
    return {
        # FunctionTransformer(builtins.exec/eval) on the column name `min` picks out
        "exec": (lambda m: _dumps(_pipeline(builtins.min, builtins.exec)),
                 ["builtins.exec", "builtins.min"]),
        "eval": (lambda m: _dumps(_pipeline(builtins.min, builtins.eval)),
                 ["builtins.eval", "builtins.min"]),
        "getattr": (lambda m: _dumps(_pipeline(builtins.getattr)), ["builtins.getattr"]),
        "methodcaller": (lambda m: _dumps(_pipeline(operator.methodcaller("to_csv", str(m)))),
                         ["operator.methodcaller"]),
        "partial": (lambda m: _dumps(_pipeline(functools.partial(builtins.eval, code(m), None))),
                    ["builtins.eval", "functools.partial"]),
        # a name under numpy. that is not an array, dtype or ufunc: numpy's own exec wrapper
        "numpy-prefix": (lambda m: _dumps(_pipeline(np.min, runstring, kw1=NO_GLOBALS)),
                         ["numpy.min", "numpy.testing._private.utils.runstring"]),
        "unknown-module": (lambda m: _dumps(Evil(str(m))), ["tests.security.payloads.Evil"]),
        "pickle-inside": (_pickle_inside, ["an array of Python objects"]),
    }  # fmt: skip


NO_GLOBALS = {"kw_args": {"dict": {}}}
KINDS = _kinds()
# kinds whose payload runs on a prediction of a frame whose column name and values are the code
RUN_ON_PREDICT = ("exec", "eval", "methodcaller", "partial", "numpy-prefix")


def model_bytes(kind: str, marker: Path) -> bytes:
    """The hostile skops file of `kind`, whose payload writes `marker`."""
    return KINDS[kind][0](marker)


def refused_names(kind: str) -> list[str]:
    """What the refusal must name for `kind`."""
    return KINDS[kind][1]


def schema(marker: Path) -> dict[str, Any]:
    """An input schema with one text feature whose name and only value are the payload's code."""
    src = code(marker)
    return {"features": [{"name": src, "dtype": "object", "nullable": False, "categories": [src]}]}


def write_hostile_bundle(dest: Path, kind: str, marker: Path) -> Path:
    """A verified bundle (correct sha256s in metadata.json) whose model is hostile."""
    files = {
        "model.skops": model_bytes(kind, marker),
        "schema.json": json.dumps(schema(marker)).encode(),
        "reference.json": b"{}",
    }
    meta = {
        "name": "penguins-classifier",
        "task": "classification",
        "target": "species",
        "classes": ["a", "b"],
        "git": {"commit": "0" * 40, "dirty": False},
    }
    write_bundle(dest, files, meta)
    return dest

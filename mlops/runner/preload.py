"""What the runner imports ahead (its preload), in what order, and when each stage may be forked.

The built-in stages import their libraries lazily, inside their functions; the runner imports
them once, in short steps, in the order the stages of `mlops init`'s pipeline need them, so that
a runner started by the command serves its first stages while it goes on importing the later
ones' libraries (docs/architecture.md, "A cold runner's schedule"). Standard library only at
import time: the runner imports this before anything heavy.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import pkgutil
import signal
import sys
import time
import warnings
from collections.abc import Iterator

# the code pin's distributions: computed by a helper process (`packages_helper`)
PACKAGES = "mlops.bundle.codepin:packages_distributions"
EXTRAS_AFTER = "evaluate"  # the last stage kind a command's own runner preloads for
# every module `sklearn.utils.all_estimators()` imports (skops.io and the trusted-type list call
# it), one step each: see `steps`
SKLEARN_ALL = "sklearn.*"
# `@KIND`: a stage that `uses: KIND` is forked once the steps above the marker are done (its
# child then imports nothing more, checked by comparing `sys.modules`); a stage of another kind
# waits for the whole preload. Until then its request waits in the runner while the preload goes
# on, rather than being forked early into a child that imports the same modules again.
READY = "@"
# what the built-in stages import (lazily, inside their functions), in the order the stages
# of `mlops init`'s pipeline need it (ingest, validate, split, train, evaluate), so that the first
# stages are served while the runner goes on importing the later ones' libraries
PRELOAD = (
    "numpy",
    "pandas",
    "yaml",
    "pydantic",
    "mlops.config",
    "mlops.stages.__main__",
    "mlops.config.check",
    "mlops.config.resolve",
    "mlops.config.reference",
    "mlops.config.storage_url",
    "mlops.config.modules",
    "mlops.stages.ingest",
    "mlops.engine.frames",
    "mlops.stages.engine",
    "pandas.io.formats.csvs",
    "pyarrow.parquet",
    "pyarrow.pandas_compat",
    "pyarrow.vendored.version",
    "pandas.core.arrays.arrow.extension_types",
    "mlops.stages.split",
    "@ingest",
    "@split",
    # validate: scipy (drift tests), which scikit-learn imports too
    "scipy.special",
    "scipy.linalg",
    "scipy.sparse",
    "scipy.optimize",
    "scipy.spatial",
    "scipy.interpolate",
    "scipy.integrate",
    "scipy.stats",
    "mlops.stages.validate",
    "configparser",
    "@validate",
    # the train stage's libraries, in steps short enough that a stage asking between two of
    # them waits little (the runner forks only between imports, never inside one)
    "sklearn",
    SKLEARN_ALL,
    "sklearn.base",
    "sklearn.compose",
    "sklearn.impute",
    "sklearn.linear_model",
    "sklearn.ensemble",
    "sklearn.metrics",
    "sklearn.model_selection",
    "sklearn.pipeline",
    "sklearn.preprocessing",
    "skops.io",
    "mlops.stages.train",
    "mlops.stages.custom",
    "mlops.bundle.codepin",
    "mlops.bundle.archive",
    "mlops.bundle.labels",
    "mlops.bundle.trust",
    "mlops.pipeline.facts",
    "pyarrow.dataset",
    "importlib_metadata._adapters",  # what reading a distribution's version imports
    "email.policy",
    "narwhals._pandas_like.namespace",  # what scikit-learn uses to read pandas frames
    "narwhals._namespace",
    "narwhals._interchange.dataframe",
    "narwhals.stable.v2._namespace",
    "encodings.cp437",
    # `module:function`: results the stages compute from the installed libraries alone,
    # remembered by the function (a package installed since changes the fingerprint: the stage
    # then runs in-process): the distributions' file lists the code pin reads (computed by a
    # helper process forked at start, in parallel: see `Runner.run`)
    "mlops.bundle.codepin:packages_distributions",
    "@train",
    "mlops.stages.evaluate",
    "mlops.stages.slices",
    "mlops.stages.plotdata",
    "mlops.stages.paired",
    "mlops.reports.evaluation",
    "mlops.reports.figures",
    # the trusted types built from every estimator (evaluate's audit)
    "mlops.bundle.trust:builtin_allow_list",
    "@evaluate",
    # what a stage may need beyond `mlops init`'s example: pandera runs the checks the validate
    # stage's own engine does not implement; storage for remote data. Only a kept runner
    # imports these: the runner of one command stops at `@evaluate` (its stage would import
    # them itself, as without a runner), rather than compete with its last stages for the CPU
    "pandera.pandas",
    "pandera.io.pandas_io",
    "mlops.deploy.storage",
)
TRACE_ENV = "MLOPS_RUNNER_TRACE"  # "1": log every preload step over 50 ms (with its time)
PRELOAD_ENV = "MLOPS_RUNNER_PRELOAD"  # "0": import nothing ahead (tests of the protocol)


def steps(names: tuple[str, ...]) -> Iterator[str]:
    for name in names:
        if name == SKLEARN_ALL:
            yield from _sklearn_modules()
        else:
            yield name


def _sklearn_modules() -> list[str]:
    """The modules `sklearn.utils.all_estimators()` imports, found without importing any: its
    `pkgutil.walk_packages` imports every package on the way (tests, externals... included),
    then every module but those it skips (tests, experimental, private ones...)."""
    try:
        import sklearn
        from sklearn.utils.discovery import _MODULE_TO_IGNORE
    except ImportError:
        return []
    found: list[str] = []

    def walk(path: list[str], prefix: str) -> None:
        for info in pkgutil.iter_modules(path, prefix):
            name = info.name
            if info.ispkg:
                found.append(name)
                walk([os.path.join(path[0], name.rpartition(".")[2])], name + ".")
            elif not (any(p in _MODULE_TO_IGNORE for p in name.split(".")) or "._" in name):
                found.append(name)

    walk(list(sklearn.__path__)[:1], "sklearn.")
    return found


def load(name: str) -> None:
    """Import `module`, or import `module:function` and call the function (its result is
    remembered by the function itself); a failure is logged (the stage then meets it itself)."""
    module, _, func = name.partition(":")
    try:
        with warnings.catch_warnings():  # as all_estimators does, for the same modules
            warnings.simplefilter("ignore", FutureWarning)
            loaded = importlib.import_module(module)
    except ImportError as exc:  # an optional extra that is not installed
        log(f"preload: {name} not available ({exc})")
        return
    except Exception as exc:
        log(f"preload: {name} failed ({type(exc).__name__}: {exc})")
        return
    if func:
        try:
            getattr(loaded, func)()
        except Exception as exc:  # the stage computes it itself, as without a runner
            log(f"preload: {name} failed ({type(exc).__name__}: {exc})")


def packages_helper(close: list[int]) -> tuple[int, int] | None:
    """Fork a process that computes `importlib.metadata.packages_distributions()` (reading
    every installed distribution's metadata and file list: about half a second) while the
    runner imports, and sends it back as JSON with the import path it saw; (pid, pipe)."""
    try:
        r, w = os.pipe()
        pid = os.fork()
    except OSError:
        return None
    if pid == 0:  # the helper: the standard library only, never returns
        code = 1
        try:
            signal.set_wakeup_fd(-1)
            for fd in (*close, r):
                with contextlib.suppress(OSError):
                    os.close(fd)
            from importlib import metadata

            mapping = metadata.packages_distributions()
            with open(w, "wb") as out:
                out.write(json.dumps({"path": sys.path, "mapping": mapping}).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(w)
    return pid, r


def take_packages(helper: tuple[int, int]) -> None:
    """Hand the helper's answer to the code pin's memo when it was computed for this very
    import path; otherwise the memo's function computes it itself (the preload step)."""
    pid, r = helper
    with open(r, "rb") as pipe:
        raw = pipe.read()
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)
    try:
        data = json.loads(raw)
    except ValueError:
        return
    if isinstance(data, dict) and data.get("path") == sys.path:
        from mlops.bundle.codepin import remember_packages_distributions

        remember_packages_distributions(data["mapping"])


def log(text: str) -> None:
    """A line in the runner's own log (its stdout), never in a stage's."""
    print(f"{stamp(time.time())} runner {os.getpid()}: {text}", flush=True)


def stamp(now: float) -> str:
    """`now` as the log writes it: local time with milliseconds."""
    return f"{time.strftime('%H:%M:%S', time.localtime(now))}.{int(now % 1 * 1000):03d}"

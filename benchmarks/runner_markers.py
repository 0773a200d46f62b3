"""Check the warm runner's `@KIND` markers: a stage forked at its marker imports nothing more.

Run inside a project made by `mlops init` that has run once (it rewrites the stages' outputs):

    cd my-project && /path/to/.venv/bin/python /path/to/benchmarks/runner_markers.py

Imports the runner's preload step by step (`mlops.runner.preload`) as the runner does (garbage
collector off, code pin's distributions from the helper process); at each marker, forks a child
that runs that stage in-process and reports the modules it imported beyond the parent's. Every
line should say 0: otherwise add those modules above the marker in `PRELOAD`.
"""

from __future__ import annotations

import contextlib
import gc
import io
import json
import os
import sys

from mlops.runner import preload, server


def main() -> int:
    server.pin_threads()
    gc.disable()
    helper = preload.packages_helper([])
    worst = 0
    for name in preload.steps(preload.PRELOAD):
        if not name.startswith(preload.READY):
            if name == preload.PACKAGES and helper is not None:
                preload.take_packages(helper)
            preload.load(name)
            continue
        kind, before = name[1:], set(sys.modules)
        r, w = os.pipe()
        gc.freeze()
        pid = os.fork()
        if pid == 0:
            gc.enable()
            from mlops.stages.__main__ import run_inprocess

            with contextlib.redirect_stdout(io.StringIO()):
                code = run_inprocess([kind])
            os.write(w, json.dumps([code, [m for m in sys.modules if m not in before]]).encode())
            os._exit(0)
        os.close(w)
        with open(r, "rb") as pipe:
            code, new = json.loads(pipe.read())
        os.waitpid(pid, 0)
        print(f"{kind}: exit {code}, {len(new)} modules imported in the child {new[:20]}")
        worst = max(worst, len(new), code)
    return 1 if worst else 0


if __name__ == "__main__":
    sys.exit(main())

"""Entry point DVC calls: `python -m mlops.stages <stage-name>`."""

from __future__ import annotations

import importlib
import sys
import time
import traceback
from pathlib import Path

from mlops.config import load_project
from mlops.errors import ExitCode, MlopsError


def main(argv: list[str]) -> int:
    # `--with KEY=ISODATE` pairs carry a span's dates for DVC to track (it cannot hash YAML
    # dates as params); the stage reads its settings from pipeline.yaml itself
    rest = argv[1:]
    carried = len(rest) % 2 == 0 and all(f == "--with" for f in rest[::2])
    if not argv or not carried:
        print("usage: python -m mlops.stages STAGE [--with KEY=VALUE]...", file=sys.stderr)
        return int(ExitCode.USAGE)
    name = argv[0]
    t0 = time.perf_counter()
    try:
        project = load_project(Path.cwd())
        stage = project.stages.get(name)
        if stage is None or stage.kind is None:
            raise MlopsError(f"{name!r} is not a built-in stage in pipeline.yaml")
        module = importlib.import_module(f"mlops.stages.{stage.kind}")
        for line in module.run(project, stage):
            print(line, flush=True)
    except MlopsError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        if exc.hint:
            print(f"hint: {exc.hint}", file=sys.stderr)
        return int(exc.exit_code)
    except Exception as exc:  # a bug or an unexpected input: keep the type, message and trace
        traceback.print_exc(file=sys.stderr)
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        print(
            f"hint: an unexpected error in the built-in stage {name!r}; the traceback is above "
            "in this log. Check the data and pipeline.yaml it names, or report it with the log.",
            file=sys.stderr,
        )
        return int(ExitCode.UNEXPECTED)
    print(f"{name}: done in {time.perf_counter() - t0:.2f}s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

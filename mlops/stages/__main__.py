"""Entry point DVC calls: `python -m mlops.stages <stage-name>`.

A thin client first: when a warm runner listens for this repository (`mlops run` starts one,
`mlops runner start` keeps one), the stage runs in a fork of it (`mlops.handoff.client`), with
this process's descriptors, directory, environment and limits; otherwise it runs here, as it
always did (`dvc repro`, `dvc exp run`, CI).
"""

from __future__ import annotations

import sys


def _usage(argv: list[str]) -> bool:
    # `--with KEY=ISODATE` pairs carry a span's dates for DVC to track (it cannot hash YAML
    # dates as params); the stage reads its settings from pipeline.yaml itself
    rest = argv[1:]
    carried = len(rest) % 2 == 0 and all(f == "--with" for f in rest[::2])
    return not argv or not carried


def main(argv: list[str]) -> int:
    """Run the stage `argv[0]`: in this repository's warm runner if one listens, else here."""
    if not _usage(argv):
        from mlops.handoff.client import run_via_runner

        code = run_via_runner(argv)
        if code is not None:
            return code
    return run_inprocess(argv)


def run_inprocess(argv: list[str]) -> int:
    """Run the stage in this process; returns its exit code."""
    import importlib
    import time
    import traceback
    from pathlib import Path

    from mlops.config import load_project
    from mlops.errors import ExitCode, MlopsError

    if _usage(argv):
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

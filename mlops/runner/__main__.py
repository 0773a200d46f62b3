"""`python -m mlops.runner COMMON SOCKET [--owner PID] [--idle SECONDS]`: the runner process.

Started by `mlops.runner.lifecycle.start`, not by hand.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    """Listen for the repository whose git common directory is COMMON; serve until stopped."""
    parser = argparse.ArgumentParser(prog="python -m mlops.runner")
    parser.add_argument("common")
    parser.add_argument("socket")
    parser.add_argument("--owner", type=int, default=None)
    parser.add_argument("--idle", type=float, default=0.0)
    args = parser.parse_args(argv)
    from mlops.runner.server import Runner, log

    runner = Runner(Path(args.common), Path(args.socket), owner=args.owner, idle=args.idle)
    try:
        runner.listen()
    except OSError as exc:
        log(f"cannot listen on {args.socket}: {exc}")
        return 1
    log(f"listening on {args.socket} for {args.common}")
    return runner.run()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""`python -m mlops.runner COMMON SOCKET [--owner PID] [--idle SECONDS] [--fd FD]`: the runner.

Started by `mlops.runner.lifecycle.start`, not by hand.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    """Listen for the repository whose git common directory is COMMON; serve until stopped."""
    parser = argparse.ArgumentParser(prog="python -m mlops.runner")
    parser.add_argument("common")
    parser.add_argument("socket")
    parser.add_argument("--owner", type=int, default=None)
    parser.add_argument("--idle", type=float, default=0.0)
    parser.add_argument("--fd", type=int, default=None, help="SOCKET, already listening")
    args = parser.parse_args(argv)
    from mlops.runner.server import Runner, log

    runner = Runner(Path(args.common), Path(args.socket), owner=args.owner, idle=args.idle)
    try:
        listener = None
        if args.fd is not None:
            import socket

            listener = socket.socket(fileno=args.fd)
            if listener.family != socket.AF_UNIX or listener.getsockname() != args.socket:
                raise OSError(f"descriptor {args.fd} is not a socket listening on {args.socket}")
        runner.listen(listener)
    except OSError as exc:
        log(f"cannot listen on {args.socket}: {exc}")
        return 1
    log(f"listening on {args.socket} for {args.common}")
    return runner.run()


if __name__ == "__main__":
    code = main(sys.argv[1:])
    # no interpreter shutdown: tearing down thousands of preloaded modules took 0.3 s, which
    # the command that stops its runner waited for; there is nothing to clean up
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)

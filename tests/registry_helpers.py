"""Helpers for the registry tests: the real `gto`, bare remotes that record pushes, tags."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from tests.helpers import git

GTO = str(Path(sys.executable).parent / "gto")
NAME = "penguins-classifier"
HOOK = """#!/bin/sh
# records the push options and the refs of every push
{ echo "options=${GIT_PUSH_OPTION_COUNT:-0}"
  i=0
  while [ "$i" -lt "${GIT_PUSH_OPTION_COUNT:-0}" ]; do
    eval "echo \\"option: \\$GIT_PUSH_OPTION_$i\\""
    i=$((i+1))
  done
  sed 's/^/ref: /'
} >> "$GIT_DIR/push-log.txt"
"""


def at(seconds: int) -> dict[str, str]:
    """Environment that dates git tags and commits (tagger time) at 2026-01-01 + seconds."""
    return {"GIT_COMMITTER_DATE": f"@{1767225600 + seconds} +0000"}


def tag(root: Path, name: str, rev: str = "HEAD", message: str | None = None) -> None:
    git(root, "tag", "-a", name, rev, "-m", message or name)


def register_by_hand(root: Path, version: str, blessed: bool = True, accuracy: float = 0.9):
    """A registration tag as `mlops register` writes it, on a new commit."""
    git(root, "commit", "-q", "--allow-empty", "-m", f"train {version}")
    msg = (
        f"Registering artifact {NAME} version {version}\n\n"
        f"blessed: {'true' if blessed else 'false'}\nmetrics: accuracy={accuracy}\n"
    )
    tag(root, f"{NAME}@{version}", message=msg)
    return git(root, "rev-parse", "HEAD")


_last_gto_second = [0]


def gto(root: Path, *args: str) -> str:
    """Run the real `gto` CLI. gto dates its tags with the clock (it ignores
    GIT_COMMITTER_DATE), so each call starts in a later second than the previous one ended:
    its events never tie with the previous ones (one-second resolution)."""
    while int(time.time()) <= _last_gto_second[0]:
        time.sleep(0.05)
    proc = subprocess.run([GTO, *args], cwd=root, capture_output=True, text=True)
    _last_gto_second[0] = int(time.time())
    assert proc.returncode == 0, proc.stderr + proc.stdout
    return proc.stdout


def gto_state(root: Path, deprecated: bool = True) -> dict:
    out = json.loads(gto(root, "show", "--json", *(["-d"] if deprecated else [])))
    return {
        name: {**d, "stage": {s: v for s, v in d["stage"].items() if v is not None}}
        for name, d in out.items()
        if d["registered"]
    }


def mlops_state(cli, root: Path) -> dict:
    result = cli(["registry", "show", "--json"], cwd=root)
    assert result.exit_code == 0, result.output
    return {
        name: {
            "version": d["version"],
            "stage": {s: v for s, v in d["stage"].items() if v is not None},
            "registered": d["registered"],
            "active": d["active"],
        }
        for name, d in json.loads(result.output).items()
    }


def origin_for(project: Path, tmp_path: Path, push_options: bool = True) -> Path:
    """A bare repository as `origin` (advertising push options if asked) with a logging hook."""
    origin = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(origin))
    if push_options:
        git(origin, "config", "receive.advertisePushOptions", "true")
    hook = origin / "hooks" / "pre-receive"
    hook.write_text(HOOK)
    hook.chmod(0o755)
    git(project, "remote", "add", "origin", str(origin))
    git(project, "push", "-q", "origin", "main")
    (origin / "push-log.txt").unlink(missing_ok=True)
    return origin


def refs(root: Path) -> list[str]:
    """Branches and tags (run records under refs/mlops/ come and go with every command)."""
    out = git(root, "for-each-ref", "--format=%(refname)").splitlines()
    return [r for r in out if not r.startswith("refs/mlops/")]

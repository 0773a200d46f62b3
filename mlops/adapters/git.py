"""Git, through the `git` command line.

The only module that runs git. It shells out rather than importing GitPython: GitPython shells
out for most work anyway, costs 0.19 s to import, and `git for-each-ref` and
`git status --porcelain` are the fastest way to read many refs and the working-tree state.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from mlops.errors import GitStateError


@dataclass
class GitResult:
    code: int
    out: str
    err: str


def git_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("GIT_TERMINAL_PROMPT", "0")
    env["LC_ALL"] = "C"
    return env


def run(root: Path | str, *args: str, check: bool = True, input: str | None = None) -> GitResult:
    """Run `git -C root args...`; raise `GitStateError` with git's message when `check` fails."""
    try:
        proc = subprocess.run(
            ["git", "-C", str(root), *args],
            capture_output=True,
            text=True,
            env=git_env(),
            input=input,
        )
    except FileNotFoundError:
        raise GitStateError("git is not installed", "Install git and try again.") from None
    result = GitResult(proc.returncode, proc.stdout, proc.stderr)
    if check and proc.returncode != 0:
        msg = proc.stderr.strip() or proc.stdout.strip()
        raise GitStateError(f"git {' '.join(args[:2])} failed: {msg}")
    return result


def toplevel(path: Path | str) -> Path | None:
    """The root of the work tree that contains `path`, or None outside any repository."""
    res = run(path, "rev-parse", "--show-toplevel", check=False)
    return Path(res.out.strip()) if res.code == 0 else None


def init(root: Path, branch: str = "main") -> None:
    run(root, "init", "-q", "-b", branch)


def head(root: Path) -> str | None:
    """The commit HEAD points at, or None in a repository without commits."""
    res = run(root, "rev-parse", "--verify", "-q", "HEAD", check=False)
    return res.out.strip() or None


def branch(root: Path) -> str | None:
    res = run(root, "symbolic-ref", "--short", "-q", "HEAD", check=False)
    return res.out.strip() or None


def is_dirty(root: Path, untracked: bool = False) -> bool:
    """True when tracked files differ from HEAD (and, with `untracked`, new files exist)."""
    flag = "--untracked-files=normal" if untracked else "--untracked-files=no"
    res = run(root, "status", "--porcelain", flag, check=False)
    return bool(res.out.strip())


def changed_files(root: Path, untracked: bool = True) -> list[str]:
    """Paths git reports as modified, added, deleted or (with `untracked`) new."""
    flag = "--untracked-files=all" if untracked else "--untracked-files=no"
    res = run(root, "status", "--porcelain", "-z", flag, check=False)
    out = []
    entries = res.out.split("\0")
    i = 0
    while i < len(entries):
        entry = entries[i]
        i += 1
        if len(entry) < 4:
            continue
        status, path = entry[:2], entry[3:]
        if "R" in status or "C" in status:
            i += 1  # the original path follows a rename/copy
        out.append(path)
    return out


def rev_parse(root: Path, rev: str) -> str | None:
    """The commit `rev` names (a branch, tag, remote branch or commit), or None."""
    res = run(root, "rev-parse", "--verify", "-q", f"{rev}^{{commit}}", check=False)
    return (res.out.strip() or None) if res.code == 0 else None


def show_file(root: Path, rev: str, path: str) -> str | None:
    """The text of `path` at commit `rev`, or None when it is not there."""
    res = run(root, "show", f"{rev}:{path}", check=False)
    return res.out if res.code == 0 else None


def worktree_add(root: Path, dest: Path, rev: str = "HEAD") -> None:
    """A detached work tree of `rev` at `dest` (sharing this repository's objects)."""
    # the user's hooks (post-checkout, ...) are not run for this internal copy
    run(root, "-c", "core.hooksPath=/dev/null", "worktree", "add", "--detach", "-q", str(dest), rev)


def worktree_remove(root: Path, dest: Path) -> None:
    """Remove a work tree made by `worktree_add` (and forget it), even with changes in it."""
    run(root, "worktree", "remove", "--force", str(dest), check=False)
    run(root, "worktree", "prune", check=False)

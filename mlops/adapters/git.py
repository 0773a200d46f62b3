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

from mlops.adapters.secrets import clip, mask
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
    # stderr is only ever shown (and a remote may echo a credential into it): masked here
    result = GitResult(proc.returncode, proc.stdout, mask(proc.stderr))
    if check and proc.returncode != 0:
        msg = clip(result.err.strip() or proc.stdout.strip(), 2000, keep="tail")
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


# ---- tags, refs, remotes and plumbing (the registry's needs) ------------------------------

# one `git for-each-ref` call reads every tag: name, type, the commit it points at (peeled for
# annotated tags), tagger, date and message; fields end with NUL (messages may hold newlines)
_TAG_FIELDS = (
    "%(refname:strip=2)",
    "%(objecttype)",
    "%(*objectname)",
    "%(objectname)",
    "%(taggername)",
    "%(taggeremail:trim)",
    "%(taggerdate:unix)",
    "%(contents)",
)
_TAG_FORMAT = "%00".join(_TAG_FIELDS) + "%00"


@dataclass(frozen=True)
class TagRef:
    """One git tag as `for-each-ref` reports it."""

    name: str
    annotated: bool
    commit: str  # the commit it points at (peeled)
    tagger: str = ""
    email: str = ""
    timestamp: int = 0  # tagger date, seconds since the epoch
    message: str = ""


def list_tags(root: Path | str) -> list[TagRef]:
    """Every tag of the repository, read in a single `git for-each-ref` call."""
    res = run(root, "for-each-ref", f"--format={_TAG_FORMAT}", "refs/tags/")
    fields = res.out.split("\0")
    n = len(_TAG_FIELDS)
    out: list[TagRef] = []
    for i in range(0, len(fields) - n + 1, n):
        name, kind, peeled, obj, tagger, email, date, message = fields[i : i + n]
        name = name.lstrip("\n")
        annotated = kind == "tag"
        out.append(
            TagRef(
                name=name,
                annotated=annotated,
                commit=(peeled or obj) if annotated else obj,
                tagger=tagger,
                email=email,
                timestamp=int(date) if date.strip().isdigit() else 0,
                message=message,
            )
        )
    return out


def rev_parse(root: Path | str, rev: str) -> str | None:
    """The commit `rev` names, or None when it names none."""
    res = run(root, "rev-parse", "--verify", "-q", f"{rev}^{{commit}}", check=False)
    return res.out.strip() or None


def create_tag(root: Path | str, name: str, commit: str, message: str | None) -> None:
    """An annotated tag (`message` given) or a lightweight one (`message` None) on `commit`."""
    if message is None:
        run(root, "tag", name, commit)
    else:
        run(root, "tag", "-a", name, commit, "-F", "-", input=message)


def delete_tag(root: Path | str, name: str) -> None:
    run(root, "tag", "-d", name, check=False)


def redact(text: str) -> str:
    """Git's text with secrets masked (`mlops.adapters.secrets.mask`): every secret-looking
    environment variable's value, and `https://user:token@host/...` -> `https://***@host/...`."""
    return mask(text)


def remote_url(root: Path | str, remote: str = "origin") -> str | None:
    res = run(root, "remote", "get-url", remote, check=False)
    return (res.out.strip() or None) if res.code == 0 else None


def push(
    root: Path | str,
    remote: str,
    refspecs: list[str],
    *,
    options: list[str] | None = None,
    atomic: bool = False,
) -> GitResult:
    """`git push` (never raises: callers read `code` and `err`)."""
    args = ["push", "--porcelain"]
    if atomic:
        args.append("--atomic")
    for opt in options or []:
        args += ["-o", opt]
    return run(root, *args, remote, *refspecs, check=False)


def fetch(root: Path | str, remote: str, *refspecs: str) -> GitResult:
    """`git fetch` without touching the work tree (never raises)."""
    return run(root, "fetch", "-q", "--no-recurse-submodules", remote, *refspecs, check=False)


def remote_default_branch(root: Path | str, remote: str = "origin") -> str | None:
    """The remote's default branch, asked of the remote itself: the branch its HEAD points at.

    A bare repository made with plain `git init --bare` keeps HEAD at `master` even when only
    `main` was pushed; then the branch HEAD names does not exist, and the one branch of `main`,
    `master` and the local branch's name that does exist is taken.
    """
    res = run(root, "ls-remote", "--symref", remote, "HEAD", "refs/heads/*", check=False)
    head = None
    branches = set()
    for line in res.out.splitlines():
        if line.startswith("ref: refs/heads/") and line.endswith("\tHEAD"):
            head = line[len("ref: refs/heads/") : -len("\tHEAD")]
        elif "\trefs/heads/" in line:
            branches.add(line.split("\trefs/heads/", 1)[1])
    if head in branches:
        return head
    for candidate in ("main", "master", branch(Path(root))):
        if candidate and candidate in branches:
            return candidate
    return None


def show_file(root: Path | str, rev: str, path: str) -> str | None:
    """The text of `path` at `rev`, or None when it does not exist there."""
    res = run(root, "show", f"{rev}:{path}", check=False)
    return res.out if res.code == 0 else None


def worktree_add(root: Path, dest: Path, rev: str = "HEAD") -> None:
    """A detached work tree of `rev` at `dest` (sharing this repository's objects)."""
    # the user's hooks (post-checkout, ...) are not run for this internal copy
    run(root, "-c", "core.hooksPath=/dev/null", "worktree", "add", "--detach", "-q", str(dest), rev)


def worktree_remove(root: Path, dest: Path) -> None:
    """Remove a work tree made by `worktree_add` (and forget it), even with changes in it."""
    if run(root, "worktree", "remove", "--force", str(dest), check=False).code != 0:
        run(root, "worktree", "prune", check=False)  # e.g. its directory was already gone


@dataclass(frozen=True)
class CommitInfo:
    commit: str
    author: str
    email: str
    timestamp: int
    subject: str


def commit_info(root: Path | str, rev: str) -> CommitInfo | None:
    res = run(root, "show", "-s", "--format=%H%x00%an%x00%ae%x00%at%x00%s", rev, "--", check=False)
    parts = res.out.rstrip("\n").split("\0")
    if res.code != 0 or len(parts) != 5:
        return None
    return CommitInfo(parts[0], parts[1], parts[2], int(parts[3]), parts[4])


def file_history(root: Path | str, rev: str, path: str) -> list[CommitInfo]:
    """Commits reachable from `rev` that changed `path`, newest first."""
    res = run(
        root, "log", "--format=%H%x00%an%x00%ae%x00%at%x00%B%x1e", rev, "--", path, check=False
    )
    out = []
    for rec in res.out.split("\x1e"):
        parts = rec.lstrip("\n").split("\0")
        if len(parts) == 5:
            out.append(CommitInfo(parts[0], parts[1], parts[2], int(parts[3]), parts[4]))
    return out


def commit_file(root: Path | str, base: str, path: str, content: str, message: str) -> str:
    """A new commit on top of `base` that sets `path` to `content`; returns its id.

    Works on a temporary index, so neither the work tree, the index nor HEAD changes.
    """
    import tempfile

    blob = run(root, "hash-object", "-w", "--stdin", input=content).out.strip()
    with tempfile.TemporaryDirectory(prefix="mlops-index-") as tmp:
        env_index = os.path.join(tmp, "index")
        env = {**git_env(), "GIT_INDEX_FILE": env_index}

        def plumb(*args: str, input: str | None = None) -> str:
            proc = subprocess.run(
                ["git", "-C", str(root), *args],
                capture_output=True,
                text=True,
                env=env,
                input=input,
            )
            if proc.returncode != 0:
                raise GitStateError(f"git {args[0]} failed: {mask(proc.stderr.strip())}")
            return proc.stdout.strip()

        plumb("read-tree", base)
        plumb("update-index", "--add", "--cacheinfo", f"100644,{blob},{path}")
        tree = plumb("write-tree")
        return plumb("commit-tree", tree, "-p", base, "-F", "-", input=message)


def commit_on(root: Path | str, parent: str, message: str) -> str:
    """A new commit with `parent`'s tree and `parent` as its parent (no ref points at it)."""
    tree = run(root, "rev-parse", f"{parent}^{{tree}}").out.strip()
    return run(root, "commit-tree", tree, "-p", parent, "-F", "-", input=message).out.strip()


def update_ref(root: Path | str, ref: str, new: str, old: str | None = None) -> None:
    """Point `ref` at `new`; with `old` ("" for: must not exist) only if it still holds that."""
    args = ["update-ref", ref, new]
    if old is not None:
        args.append(old or "0" * 40)
    run(root, *args)


def delete_ref(root: Path | str, ref: str) -> None:
    run(root, "update-ref", "-d", ref, check=False)


def add(root: Path | str, paths: list[str]) -> None:
    if paths:
        run(root, "add", "-A", "--", *paths)


def commit(root: Path | str, message: str) -> str:
    """Commit what is staged; return the new commit's id."""
    run(root, "commit", "-q", "-F", "-", input=message)
    return head(Path(root)) or ""


def staged_files(root: Path | str) -> list[str]:
    res = run(root, "diff", "--cached", "--name-only", "-z", check=False)
    return [p for p in res.out.split("\0") if p]


def commit_paths(root: Path | str, base: str, files: dict[str, str | None], message: str) -> str:
    """A new commit on top of `base` setting each path to its text (None: removed); its id.

    Like `commit_file`, on a temporary index: the work tree, the index and HEAD do not change.
    """
    import tempfile

    with tempfile.TemporaryDirectory(prefix="mlops-index-") as tmp:
        env = {**git_env(), "GIT_INDEX_FILE": os.path.join(tmp, "index")}

        def plumb(*args: str, input: str | None = None) -> str:
            proc = subprocess.run(
                ["git", "-C", str(root), *args], capture_output=True, text=True, env=env,
                input=input,
            )  # fmt: skip
            if proc.returncode != 0:
                raise GitStateError(f"git {args[0]} failed: {proc.stderr.strip()}")
            return proc.stdout.strip()

        plumb("read-tree", base)
        for path, content in sorted(files.items()):
            if content is None:
                plumb("update-index", "--force-remove", path)
                continue
            blob = plumb("hash-object", "-w", "--stdin", input=content)
            plumb("update-index", "--add", "--cacheinfo", f"100644,{blob},{path}")
        tree = plumb("write-tree")
        if tree == plumb("rev-parse", f"{base}^{{tree}}"):
            return base  # nothing to change
        return plumb("commit-tree", tree, "-p", base, "-F", "-", input=message)


# ---- objects and refs for the run records (mlops.pipeline.gitrecords) -----------------------


def write_blob(root: Path | str, data: bytes) -> str:
    """Store `data` as a blob in the object database; return its id."""
    try:
        proc = subprocess.run(
            ["git", "-C", str(root), "hash-object", "-w", "--stdin"],
            capture_output=True,
            input=data,
            env=git_env(),
        )
    except FileNotFoundError:
        raise GitStateError("git is not installed", "Install git and try again.") from None
    if proc.returncode != 0:
        raise GitStateError(f"git hash-object failed: {proc.stderr.decode(errors='replace')}")
    return proc.stdout.decode().strip()


def refs_under(root: Path | str, prefix: str) -> dict[str, str]:
    """`{refname: object id}` of every ref under `prefix` (one `for-each-ref` call)."""
    res = run(root, "for-each-ref", "--format=%(objectname) %(refname)", prefix, check=False)
    out = {}
    for line in res.out.splitlines():
        oid, _, name = line.partition(" ")
        if name:
            out[name] = oid
    return out


def read_blobs(root: Path | str, oids: list[str], max_bytes: int) -> dict[str, bytes]:
    """The content of each blob in `oids` (one `cat-file --batch` call); blobs larger than
    `max_bytes`, missing objects and objects of other types are left out."""
    if not oids:
        return {}
    proc = subprocess.run(
        ["git", "-C", str(root), "cat-file", "--batch"],
        capture_output=True,
        input=("\n".join(oids) + "\n").encode(),
        env=git_env(),
    )
    out: dict[str, bytes] = {}
    data = proc.stdout
    pos = 0
    for oid in oids:
        end = data.find(b"\n", pos)
        if end < 0:
            break
        header = data[pos:end].decode(errors="replace").split()
        pos = end + 1
        if len(header) != 3:  # "<oid> missing"
            continue
        size = int(header[2])
        body = data[pos : pos + size]
        pos += size + 1
        if header[1] == "blob" and size <= max_bytes:
            out[oid] = body
    return out


def config_get_all(root: Path | str, key: str) -> list[str]:
    res = run(root, "config", "--get-all", key, check=False)
    return res.out.splitlines()


def config_add(root: Path | str, key: str, value: str) -> None:
    run(root, "config", "--add", key, value)


def remotes(root: Path | str) -> list[str]:
    res = run(root, "remote", check=False)
    return [r for r in res.out.splitlines() if r]

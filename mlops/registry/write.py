"""Writing registry tags safely: the right counter, local state first, pushes that cannot race.

A stage tag takes counter N = highest `#N` on any tag of the artifact + 1. Two promotions at once
(two clones, two CI jobs) could both compute the same N for different stages, and a tag name can
also be taken on the remote meanwhile. So, when pushing:

1. the remote's tags are fetched first, so N counts what the remote already has;
2. next to the event tag, a lightweight claim `NAME#reserved#N` is created, and both are pushed in
   one atomic push (two sequential pushes, claim first, when the remote cannot do atomic ones);
   the claim's name depends only on N and it points at a commit of its own that names the event,
   so whoever pushes second is rejected;
3. a rejected push deletes what was created locally and says to run the command again.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path

from mlops.adapters import git
from mlops.errors import GitStateError
from mlops.registry.state import Registry, read_registry
from mlops.registry.tags import Action, format_tag


@dataclass
class TagWrite:
    """A tag written (and maybe pushed)."""

    tag: str
    commit: str
    counter: int | None = None
    reservation: str | None = None
    pushed: bool = False
    remote: str | None = None

    def to_dict(self) -> dict[str, object]:
        return {
            "tag": self.tag,
            "commit": self.commit,
            "counter": self.counter,
            "pushed": self.pushed,
            "remote": self.remote,
        }


def require_remote(root: Path | str, remote: str, why: str) -> str:
    """The URL of `remote`; `GitStateError` (exit 5) saying how to add one when missing."""
    url = git.remote_url(root, remote)
    if url is None:
        raise GitStateError(
            f"no git remote {remote!r}: {why}",
            f"Add one (`git remote add {remote} URL`), then run the command again.",
        )
    return url


def sync_tags(root: Path | str, remote: str) -> None:
    """Fetch the remote's tags so counters and versions count what it already has."""
    res = git.fetch(root, remote, "--tags")
    if res.code == 0:
        return
    lines = [ln for ln in res.err.splitlines() if ln.strip()]
    # a local tag that differs from the remote's is reported but does not stop the others
    if lines and all("would clobber existing tag" in ln or ln.startswith(" ! ") for ln in lines):
        return
    raise GitStateError(
        f"could not fetch tags from {remote!r}: {git.redact(res.err.strip() or res.out.strip())}",
        "Check the remote is reachable (`git fetch --tags`), then run the command again.",
    )


def rejections(res: git.GitResult) -> list[str]:
    """`ref: reason` for each ref the remote refused (from `git push --porcelain`)."""
    out = []
    for line in res.out.splitlines():
        if line.startswith("!\t"):
            parts = line.split("\t")
            ref = parts[1].split(":")[-1] if len(parts) > 1 else "?"
            reason = parts[2] if len(parts) > 2 else "rejected"
            out.append(f"{ref.removeprefix('refs/tags/').removeprefix('refs/heads/')}: {reason}")
    if not out:
        text = (res.err or res.out).strip().splitlines()
        out = [text[-1] if text else f"git push exited with {res.code}"]
    return [git.redact(line) for line in out]


def push_refs(
    root: Path | str, remote: str, refs: list[str], options: list[str] | None = None
) -> tuple[git.GitResult, bool | None]:
    """Push `refs` all or nothing; returns git's result and whether the push options were taken.

    Atomic when the remote supports it, else one ref at a time in the order given (claims first).
    A remote that does not take push options gets the push again without them (result: False).
    """
    specs = [f"{r}:{r}" for r in refs]
    atomic = len(specs) > 1
    accepted: bool | None = True if options else None
    res = git.push(root, remote, specs, options=options, atomic=atomic)
    if res.code != 0 and options and NO_PUSH_OPTIONS in res.err:
        accepted, options = False, None
        res = git.push(root, remote, specs, atomic=atomic)
    if res.code != 0 and atomic and "atomic" in res.err and "support" in res.err:
        for spec in specs:
            res = git.push(root, remote, [spec], options=options)
            if res.code != 0:
                break
    return res, accepted


def write_tag(
    root: Path | str,
    tag: str,
    commit: str,
    message: str,
    *,
    push: bool = False,
    remote: str = "origin",
    reservation: str | None = None,
    counter: int | None = None,
    also_push: list[str] | None = None,
) -> TagWrite:
    """Create annotated `tag` on `commit` (plus the lightweight `reservation`), then push them
    (with the refs `also_push`, e.g. the registration tag of the version a stage tag names).

    On a rejected push both local tags are deleted again and `GitStateError` says to retry.
    """
    existing = {t.name for t in git.list_tags(root)}
    for name in (tag, reservation):
        if name and name in existing:
            raise GitStateError(
                f"tag {name!r} already exists",
                "Another registry event took that name; fetch tags (`git fetch --tags`) and "
                "run the command again.",
            )
    created: list[str] = []
    try:
        if reservation:
            # the claim points at a commit of its own (naming the event), so two claimants of
            # one counter never push the same value: the second push is always rejected
            claim = git.commit_on(root, commit, f"mlops: counter claimed by {tag}\n")
            git.create_tag(root, reservation, claim, None)
            created.append(reservation)
        git.create_tag(root, tag, commit, message)
        created.append(tag)
    except GitStateError:
        for name in created:
            git.delete_tag(root, name)
        raise
    result = TagWrite(tag, commit, counter, reservation, remote=remote if push else None)
    if not push:
        return result
    refs = [f"refs/tags/{name}" for name in created] + list(also_push or [])
    res, _ = push_refs(root, remote, refs)
    if res.code != 0:
        for name in created:
            git.delete_tag(root, name)
        raise GitStateError(
            f"{remote!r} rejected the push of {tag!r} ({'; '.join(rejections(res))}); "
            "no tag was left behind",
            "Another promotion or registration probably reached the remote at the same time. "
            "Run the same command again: it fetches the remote's tags and takes the next counter.",
        )
    result.pushed = True
    return result


def _after_last_event(registry: Registry, name: str) -> None:
    """Wait (at most a second) until the clock is past the artifact's latest event.

    Tagger dates have one-second resolution. Two stage events in the same second are ordered
    differently by GTO (by version) and by DVC and mlops (by counter); never writing such a tie
    keeps every reader of the registry in agreement.
    """
    art = registry.get(name)
    last = max((e.timestamp for e in art.events), default=0) if art else 0
    now = time.time()
    if now < last + 1:
        time.sleep(last + 1 - now)


def write_stage_tag(
    root: Path | str,
    name: str,
    stage: str,
    commit: str,
    message: str,
    *,
    unassign: bool = False,
    push: bool = False,
    remote: str = "origin",
    registry: Registry | None = None,
    also_push: list[str] | None = None,
) -> TagWrite:
    """Write `NAME#STAGE#N` (or `NAME#STAGE!#N`) with the next counter, and push it safely.

    When pushing, the remote's tags are fetched first (pass `registry` only when not pushing,
    or when it was read after that fetch).
    """
    if push:
        require_remote(root, remote, "pushing needs one")
        sync_tags(root, remote)
        registry = None
    reg = registry or read_registry(root)
    counter = reg.next_counter(name)
    _after_last_event(reg, name)
    action = Action.UNASSIGN if unassign else Action.ASSIGN
    tag = format_tag(action, name, stage=stage, counter=counter)
    claim = format_tag(Action.RESERVE, name, counter=counter)
    return write_tag(
        root,
        tag,
        commit,
        message,
        push=push,
        remote=remote,
        reservation=claim,
        counter=counter,
        also_push=also_push,
    )


def free_tag_name(registry: Registry, base: str, name: str) -> str:
    """`base`, or `base#N` with the next counter when a tag already has that name (GTO does so)."""
    if base not in registry.tag_names:
        return base
    return f"{base}#{registry.next_counter(name)}"


MR_URL_RE = re.compile(r"https?://\S+/merge_requests/\d+")
NO_PUSH_OPTIONS = "does not support push options"

"""Stage tags a killed deploy or promote left local: pushed by the next one that pushes.

Writing a stage tag is two steps (create it locally, then push it with its counter claim);
a process killed between them leaves the assignment in this clone only. The next `mlops deploy`
or `mlops promote` that pushes sends those tags first (with the claims and the registration
tags they name, when the remote lacks them) and says so.
"""

from __future__ import annotations

from pathlib import Path

from mlops.adapters import git
from mlops.registry.tags import Action, format_tag, parse_tag
from mlops.registry.write import push_refs, rejections

STAGE_EVENTS = (Action.ASSIGN, Action.UNASSIGN)


def remote_tags(root: Path | str, remote: str) -> set[str] | None:
    """Tag names on `remote` (None when it cannot be read)."""
    res = git.run(root, "ls-remote", "--tags", remote, check=False)
    if res.code != 0:
        return None
    out = set()
    for line in res.out.splitlines():
        ref = line.split("\t", 1)[-1]
        if ref.startswith("refs/tags/"):
            out.add(ref.removeprefix("refs/tags/").removesuffix("^{}"))
    return out


def push_pending_stage_tags(root: Path | str, name: str, remote: str) -> list[str]:
    """Push `name`'s stage tags that exist here but not on `remote`; returns notes saying what
    was pushed (or why not). Nothing to do: []."""
    there = remote_tags(root, remote)
    if there is None:
        return []
    local = {t.name: t for t in git.list_tags(root)}
    pending: list[str] = []
    extra: list[str] = []
    for tag, ref in sorted(local.items()):
        parsed = parse_tag(tag)
        if parsed is None or parsed.name != name or parsed.action not in STAGE_EVENTS:
            continue
        if tag in there:
            continue
        pending.append(tag)
        claim = format_tag(Action.RESERVE, name, counter=parsed.counter)
        if parsed.counter is not None and claim in local and claim not in there:
            extra.append(claim)
        for other, other_ref in local.items():  # the registration tag of the version it names
            p = parse_tag(other)
            if (
                p is not None
                and p.action == Action.REGISTER
                and p.name == name
                and other_ref.commit == ref.commit
                and other not in there
            ):
                extra.append(other)
    if not pending:
        return []
    refs = [f"refs/tags/{t}" for t in sorted(set(extra)) + pending]
    res, _ = push_refs(root, remote, refs)
    if res.code != 0:
        return [
            f"stage tags left local by an earlier deploy or promote ({', '.join(pending)}) "
            f"could not be pushed: {'; '.join(rejections(res))}"
        ]
    return [f"pushed stage tags an earlier deploy or promote left local: {', '.join(pending)}"]

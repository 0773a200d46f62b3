"""What a deploy leaves on its target and in the registry, and what the next one repairs.

The journal (`.deploy-journal.json`) written before the fetch and removed after the record; the
stage tag and `history.jsonl` line that record a deploy (`_Recorder`, `_history`); and `_repair`,
which finishes or closes a deploy that was killed, and removes temporary leftovers.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlops.deploy.remote import RemoteTarget
from mlops.deploy.target import Target
from mlops.errors import GitStateError
from mlops.registry.state import Registry, read_registry
from mlops.registry.tags import format_message
from mlops.registry.write import write_stage_tag

AnyTarget = Target | RemoteTarget


# ---- the journal and leftovers --------------------------------------------------------------


def _read_journal(target: AnyTarget) -> dict[str, Any] | None:
    return target.read_journal()


def _write_journal(target: AnyTarget, data: dict[str, Any]) -> None:
    target.write_journal(data)


def _drop_journal(target: AnyTarget) -> None:
    target.drop_journal()


def complete(target: AnyTarget, version: str) -> bool:
    """Whether `versions/<version>` is installed and every file matches its hash."""
    return target.complete(version)


def _remove_leftovers(target: AnyTarget) -> list[str]:
    return target.remove_leftovers()


# ---- recording --------------------------------------------------------------------------------


@dataclass
class _Recorder:
    """Writes the stage tag and history lines of one environment."""

    root: Path
    name: str
    env: str
    push: bool
    remote: str
    notes: list[str]
    has_remote: bool = True

    def stage_tag(
        self, version: str, commit: str, registration_tag: str | None, **fields: str | None
    ) -> tuple[str | None, bool | None]:
        """Assign the stage to `version` unless the registry already says so.

        Returns (tag, pushed); pushed is None when no new tag was needed. A push the remote
        refuses leaves the tag written locally, with a note saying how to push it.
        """
        art = read_registry(self.root).get(self.name)
        holder = art.in_stage(self.env) if art else None
        if holder is not None and holder.version == version:
            return holder.tag, None
        message = format_message(
            f"Assigning stage {self.env} to artifact {self.name} version {version}",
            {
                "replaces": holder.version if holder else "",
                **{k.replace("_", "-"): v or "" for k, v in fields.items()},
                "deployed-by": "mlops deploy",
            },
        )
        also = [f"refs/tags/{registration_tag}"] if registration_tag else []
        if self.push:
            try:
                w = write_stage_tag(
                    self.root,
                    self.name,
                    self.env,
                    commit,
                    message,
                    push=True,
                    remote=self.remote,
                    also_push=also,
                )
                return w.tag, True
            except GitStateError as exc:
                self.notes.append(f"the stage tag could not be pushed: {exc.message}")
        w = write_stage_tag(self.root, self.name, self.env, commit, message, push=False)
        if self.has_remote:
            refs = " ".join([w.tag, w.reservation or "", registration_tag or ""]).split()
            self.notes.append(
                f"stage tag {w.tag} is local only; share it: git push {self.remote} "
                + " ".join(f"'{r}'" for r in refs)
            )
        return w.tag, False


def _history(target: AnyTarget, event: dict[str, Any]) -> dict[str, Any]:
    job = os.environ.get("CI_JOB_URL")
    return target.append_history({**event, **({"ci_job": job} if job else {})})


def _repair(target: AnyTarget, rec: _Recorder, registry: Registry) -> list[str]:
    """Finish or close what a killed deploy left behind; remove temporary files."""
    repaired: list[str] = []
    journal = _read_journal(target)
    if journal is not None:
        live = target.current_version()
        version = journal.get("version")
        deploy_id = journal.get("id")
        if deploy_id and any(e.get("deploy_id") == deploy_id for e in target.history()):
            repaired.append(f"the deploy of {version} was recorded; only its journal was left")
        elif version and live == version and complete(target, version):
            v = registry.artifact(rec.name).version(version)
            tag, pushed = rec.stage_tag(
                version,
                journal.get("commit") or (v.commit if v else ""),
                journal.get("registration_tag"),
                rollback_from=journal.get("rollback_from"),
            )
            _history(
                target,
                {
                    "event": "rollback" if journal.get("rollback_from") else "deploy",
                    "env": rec.env,
                    "name": rec.name,
                    "version": version,
                    "deploy_id": deploy_id,
                    "previous": journal.get("previous"),
                    "commit": journal.get("commit"),
                    "tag": tag,
                    "pushed": pushed,
                    "source": journal.get("source"),
                    "recovered": True,
                    "note": "recorded by the next deploy: the deploy that switched to it was "
                    "interrupted before recording it",
                },
            )
            repaired.append(
                f"a deploy of {version} was interrupted after it went live; recorded it now"
            )
        else:
            _history(
                target,
                {
                    "event": "deploy-interrupted",
                    "env": rec.env,
                    "name": rec.name,
                    "version": version,
                    "deploy_id": deploy_id,
                    "live": live,
                    "started": journal.get("started"),
                },
            )
            repaired.append(
                f"a deploy of {version or 'an unknown version'} was interrupted before going "
                f"live; {live or 'nothing'} stayed live"
            )
            if version and version != live and journal.get("new_install"):
                # installed by the killed deploy and never live: remove it, as a failed deploy
                # would have
                target.remove_version(version)
                repaired.append(f"removed versions/{version}, which never went live")
        _drop_journal(target)
    repaired += [f"removed leftover {p}" for p in _remove_leftovers(target)]
    return repaired

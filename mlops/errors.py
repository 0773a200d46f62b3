"""Error types and the exit codes they map to.

Library code raises these; only the CLI entry point (`mlops.cli`) turns them into exit codes and
messages. Every error carries a message that says what is wrong and, in `hint`, what to do next.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from mlops.adapters.secrets import mask


class ExitCode(IntEnum):
    """The one exit-code table (documented in README.md)."""

    OK = 0
    UNEXPECTED = 1
    USAGE = 2
    DATA_VALIDATION = 3
    GATE_FAILED = 4
    GIT_STATE = 5
    DEPLOY_FAILED = 6
    MONITOR_BREACH = 7
    STAGE_FAILED = 8
    INTERRUPTED = 130  # Ctrl-C (SIGINT), the shell's convention


class MlopsError(Exception):
    """Base class: an expected failure with a user-facing message and a hint."""

    exit_code: ExitCode = ExitCode.UNEXPECTED

    def __init__(self, message: str, hint: str | None = None, *, details: object = None) -> None:
        # secrets never reach a message, a run record or a log (mlops.adapters.secrets)
        message, hint = mask(message), (mask(hint) if hint else hint)
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.details = details

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {
            "error": type(self).__name__,
            "message": self.message,
            "exit_code": int(self.exit_code),
        }
        if self.hint:
            out["hint"] = self.hint
        if self.details is not None:
            out["details"] = self.details
        return out


class UsageError(MlopsError):
    exit_code = ExitCode.USAGE


@dataclass(frozen=True)
class ConfigIssue:
    """One problem in a config file: where it is and what is wrong."""

    file: str
    path: str
    message: str
    line: int | None = None

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        key = f" {self.path}:" if self.path else ""
        return f"{where}:{key} {self.message}"

    def to_dict(self) -> dict[str, object]:
        return {"file": self.file, "path": self.path, "line": self.line, "message": self.message}


class ConfigError(MlopsError):
    """A config file is invalid; `issues` lists every problem found, not just the first."""

    exit_code = ExitCode.USAGE

    def __init__(self, issues: list[ConfigIssue], hint: str | None = None) -> None:
        n = len(issues)
        head = f"{n} problem{'s' if n != 1 else ''} in the configuration:"
        body = "\n".join(f"  {issue}" for issue in issues)
        super().__init__(
            f"{head}\n{body}",
            hint or "Fix the keys listed above, then run `mlops check` again.",
            details=[i.to_dict() for i in issues],
        )
        self.issues = issues


class DataValidationError(MlopsError):
    exit_code = ExitCode.DATA_VALIDATION


class GateFailedError(MlopsError):
    exit_code = ExitCode.GATE_FAILED


class GitStateError(MlopsError):
    exit_code = ExitCode.GIT_STATE


class DeployError(MlopsError):
    exit_code = ExitCode.DEPLOY_FAILED


class MonitorBreach(MlopsError):
    exit_code = ExitCode.MONITOR_BREACH


class Interrupted(MlopsError):
    """The user interrupted the run (Ctrl-C); nothing was left half-done."""

    exit_code = ExitCode.INTERRUPTED


class StageFailedError(MlopsError):
    """A pipeline stage's command failed (exit code other than 3 or 4)."""

    exit_code = ExitCode.STAGE_FAILED

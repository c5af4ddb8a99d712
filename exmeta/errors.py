"""How every command fails: one line on stderr and an exit status, never a traceback."""

from __future__ import annotations

from core.ingest import SourceMismatchError


class CliError(Exception):
    """A problem to report in one line; ``code`` is the exit status."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def refusal(exc: SourceMismatchError) -> CliError:
    """A stream's history belongs to another source: `poll` and `up` refuse alike."""
    return CliError(f"{exc}: refusing to poll (to start a new history there, add --new-source)", 2)

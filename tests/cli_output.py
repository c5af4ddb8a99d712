"""What a failing `exmeta` command must look like: nothing on stdout, one line on stderr."""

from __future__ import annotations

import pytest

from exmeta.cli import main


def fails_in_one_line(
    capsys: pytest.CaptureFixture[str], args: list[str], status: int, start: str
) -> None:
    """``exmeta ARGS`` prints nothing, exits ``status`` and says why in one line."""
    assert main(args) == status
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith(f"exmeta: error: {start}")
    assert len(captured.err.strip().splitlines()) == 1

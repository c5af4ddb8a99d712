"""The CLI imports a command's code only when that command runs (P9: a long-running
`exmeta poll` never carries Flask, rich or the export's writers)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from exmeta.cli import COMMANDS, command

HEAVY = ("flask", "api", "rich", "pyarrow", "gunicorn")


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_resolves_to_its_function(name: str) -> None:
    assert callable(command(name))


def test_the_poll_command_loads_neither_the_api_nor_the_cli_extras() -> None:
    probe = (
        "import sys; from exmeta.cli import command; command('poll');"
        " import poller.runner;"
        f" print(','.join(sorted(m for m in {HEAVY!r} if m in sys.modules)))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert loaded == ""

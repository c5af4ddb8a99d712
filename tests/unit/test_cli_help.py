"""Every command explains itself: a paragraph and an example under `exmeta COMMAND --help`."""

import argparse

import pytest

from exmeta.cli import main
from exmeta.parser import build_parser

COMMANDS = sorted(
    next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)).choices
)


def help_of(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    with pytest.raises(SystemExit) as done:
        main([*argv, "--help"])
    assert done.value.code == 0
    return capsys.readouterr().out


def test_the_parser_has_every_documented_command() -> None:
    assert set(COMMANDS) >= {"migrate", "poll", "serve", "up", "verify", "replicas", "sim"}


@pytest.mark.parametrize("command", COMMANDS)
def test_each_command_has_a_paragraph_and_an_example(
    capsys: pytest.CaptureFixture[str], command: str
) -> None:
    text = help_of(capsys, command)

    usage, _, rest = text.partition("\n\n")
    assert usage.startswith(f"usage: exmeta {command}")
    paragraph = rest.split("\n\n")[0]
    assert len(paragraph.split()) >= 20, paragraph  # a paragraph, not a usage line
    example = text.split("example:\n", 1)[1].splitlines()[0]
    assert example.lstrip().split()[0:2] == ["exmeta", command] or (
        f"exmeta {command}" in example  # after the environment it needs
    )


def test_top_level_help_gives_every_exit_status_verify_uses(
    capsys: pytest.CaptureFixture[str],
) -> None:
    text = help_of(capsys)

    assert "verify check the whole history; exit 0 sound, 1 findings, 2 cannot check" in (
        " ".join(text.split())
    )
    status = text.split("exit status:\n", 1)[1]
    assert "(verify: the history could not be checked)" in status
    assert [line.split()[0] for line in status.splitlines() if line[:3].strip().isdigit()] == [
        "0",
        "1",
        "2",
    ]

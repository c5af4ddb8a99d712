"""The `exmeta` entry point only parses, wires and delegates: each concern has its own
module under exmeta/, so the entry point stays short and no command grows into a page."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

EXMETA = Path(__file__).resolve().parents[2] / "exmeta"
MAX_ENTRY_POINT_LINES = 250
MAX_FUNCTION_LINES = 60


def functions(path: Path) -> list[tuple[str, int]]:
    tree = ast.parse(path.read_text())
    return [
        (f"{path.name}:{node.name}", (node.end_lineno or node.lineno) - node.lineno + 1)
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
    ]


def test_the_entry_point_is_short() -> None:
    lines = (EXMETA / "cli.py").read_text().count("\n")
    assert lines <= MAX_ENTRY_POINT_LINES


def test_the_entry_point_holds_no_class() -> None:
    tree = ast.parse((EXMETA / "cli.py").read_text())
    assert [n.name for n in tree.body if isinstance(n, ast.ClassDef)] == []


@pytest.mark.parametrize("path", sorted(EXMETA.glob("*.py")), ids=lambda p: p.name)
def test_no_function_of_the_cli_is_longer_than_a_screen(path: Path) -> None:
    assert [(name, n) for name, n in functions(path) if n > MAX_FUNCTION_LINES] == []

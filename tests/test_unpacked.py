"""Every chapter reads one statement at a time: tuple assignments only to unpack a call's result
(at most two that assign several expressions at once), and nothing that switches the formatter or
the line-length check off."""

import ast

import pytest

from conftest import SCRIPTS


def packed_assignments(tree: ast.AST) -> list[int]:
    """Lines that assign a tuple of two or more expressions to a tuple of names (`a, b = x, y`)."""
    lines = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Assign)
            and isinstance(node.value, ast.Tuple)
            and len(node.value.elts) > 1
        ):
            if any(isinstance(target, ast.Tuple) for target in node.targets):
                lines.append(node.lineno)
    return lines


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: p.stem)
def test_a_chapter_is_not_packed(path):
    source = path.read_text(encoding="utf-8")
    packed = packed_assignments(ast.parse(source))
    assert len(packed) <= 2, f"{path.name}: several expressions assigned at once on lines {packed}"
    for switch in ("fmt: skip", "fmt: off", "noqa: E501"):
        assert switch not in source, f"{path.name}: {switch}"


def test_the_check_finds_a_packed_line():
    assert packed_assignments(ast.parse("a, b = 1, 2\nc, d = f()\n")) == [1]

"""Every test says what behaviour it pins: a test function without a docstring fails here."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parents[1]
#: The directories whose tests read as specifications of the product.
CORE = ("unit", "integration")


def _test_modules() -> list[Path]:
    return sorted(p for d in CORE for p in (TESTS / d).glob("test_*.py"))


def _undocumented(path: Path) -> list[str]:
    """``file:line name`` of each test function in ``path`` without a docstring."""
    tree = ast.parse(path.read_text("utf-8"), filename=str(path))
    return [
        f"{path.relative_to(TESTS)}:{node.lineno} {node.name}"
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.name.startswith("test")
        and not ast.get_docstring(node)
    ]


class TestDocstrings:
    """Tests in tests/unit and tests/integration state their behaviour in a docstring."""

    def test_modules_found(self) -> None:
        """The scan sees the test modules (a moved directory would make it pass vacuously)."""
        assert len(_test_modules()) > 20

    @pytest.mark.parametrize("path", _test_modules(), ids=lambda p: f"{p.parent.name}/{p.name}")
    def test_every_test_has_a_docstring(self, path: Path) -> None:
        """Each test function of the module has a docstring."""
        assert _undocumented(path) == []

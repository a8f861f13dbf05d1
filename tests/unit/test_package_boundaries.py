"""The product stays apart from its sandbox: ``vicidial-cdc run`` never imports ``cdc.testing``.

``cdc.testing`` (private MariaDB, simulator, receiver, demo) is imported only by the
bench, the tests and, lazily inside ``cmd_demo``, the CLI. One test reads the import
statements of every product module; the other imports every product module in a
fresh interpreter and looks at what got loaded.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import cdc

CDC = Path(cdc.__file__).resolve().parent
TESTING = "cdc.testing"
#: The one place outside the package allowed to import it: (file, function).
LAZY_DEMO_IMPORT = ("cli.py", "cmd_demo")


def _is_testing(module: str) -> bool:
    return module == TESTING or module.startswith(TESTING + ".")


def _module_name(path: Path) -> str:
    parts = path.relative_to(CDC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _product_files() -> list[Path]:
    testing_dir = CDC / "testing"
    return sorted(p for p in CDC.rglob("*.py") if testing_dir not in p.parents)


def _imported_modules(node: ast.Import | ast.ImportFrom, module: str, is_package: bool) -> list[str]:
    """Absolute names a statement imports (``from . import x`` names ``pkg.x`` too)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if node.level:
        package = module if is_package else module.rpartition(".")[0]
        for _ in range(node.level - 1):
            package = package.rpartition(".")[0]
        base = f"{package}.{node.module}" if node.module else package
    else:
        base = node.module or ""
    return [base, *(f"{base}.{alias.name}" for alias in node.names)]


def _testing_imports(path: Path) -> list[tuple[int, str | None]]:
    """(line, enclosing top-level function or None) of each import of ``cdc.testing`` in ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    module = _module_name(path)
    found: list[tuple[int, str | None]] = []

    def visit(node: ast.AST, function: str | None) -> None:
        for child in ast.iter_child_nodes(node):
            inner = function
            if function is None and isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                inner = child.name
            if isinstance(child, ast.Import | ast.ImportFrom) and any(
                _is_testing(name) for name in _imported_modules(child, module, path.name == "__init__.py")
            ):
                found.append((child.lineno, inner))
            visit(child, inner)

    visit(tree, None)
    return found


class TestNoProductModuleImportsTheSandbox:
    """No module outside cdc/testing imports it, but the CLI's demo command, lazily."""

    def test_only_the_demo_command_imports_cdc_testing(self) -> None:
        """Every import of cdc.testing outside the package sits inside cli.cmd_demo."""
        offenders = []
        demo_imports = []
        for path in _product_files():
            for line, function in _testing_imports(path):
                where = (path.relative_to(CDC).as_posix(), function)
                if where == LAZY_DEMO_IMPORT:
                    demo_imports.append(line)
                else:
                    offenders.append(f"cdc/{where[0]}:{line} (in {function or 'module scope'})")
        assert offenders == []
        assert demo_imports, "cmd_demo no longer imports cdc.testing: update LAZY_DEMO_IMPORT"

    def test_the_scan_sees_relative_and_absolute_imports(self) -> None:
        """The scanner resolves ``from ..testing import x``, ``from . import testing`` and plain imports."""
        cases = {
            "from .testing import demo": True,
            "from . import testing": True,
            "import cdc.testing.simulate": True,
            "from cdc.testing.mariadb import PrivateMariaDB": True,
            "from . import vicidial": False,
            "from .ops import check": False,
        }
        module = _module_name(CDC / "cli.py")
        for source, expected in cases.items():
            node = ast.parse(source).body[0]
            assert isinstance(node, ast.Import | ast.ImportFrom)
            names = _imported_modules(node, module, is_package=False)
            assert any(_is_testing(name) for name in names) is expected, source


class TestRunImportGraph:
    """Importing the service and every product module loads no cdc.testing module."""

    def test_run_path_loads_no_testing_module(self) -> None:
        """A fresh interpreter that imports cdc.cli, the service and all of cdc/ but the sandbox."""
        modules = [_module_name(path) for path in _product_files()]
        code = (
            "import importlib, json, sys\n"
            "import cdc.cli, cdc.service\n"
            f"for name in {modules!r}:\n"
            "    importlib.import_module(name)\n"
            "print(json.dumps(sorted(sys.modules)))\n"
        )
        done = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
        )
        assert done.returncode == 0, done.stderr[-4000:]
        assert "cdc.service" in modules and "cdc.cli" in modules
        loaded = json.loads(done.stdout.strip().splitlines()[-1])
        assert "cdc.service" in loaded
        assert [name for name in loaded if _is_testing(name)] == []

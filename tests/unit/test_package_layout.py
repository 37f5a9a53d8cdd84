"""The package's shape, held: no module is a hub, and nothing reaches into a library's privates
(Powertools' least of all: a private attribute can change in any release)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "layers" / "common" / "imagegateway"
CODE = sorted(
    [*PACKAGE.glob("*.py"), *(PACKAGE.parents[2] / "functions").glob("*/app.py")],
    key=str,
)
MAX_SIBLINGS = 7


def siblings_imported(tree: ast.Module) -> set[str]:
    """The package modules a module imports, at its top or inside a function (a lazy import is
    still a dependency)."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "imagegateway":
                found.update(alias.name for alias in node.names)
            elif node.module.startswith("imagegateway."):
                found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found.update(
                alias.name.split(".")[1]
                for alias in node.names
                if alias.name.startswith("imagegateway.")
            )
    return found


def private_names_defined_here() -> set[str]:
    """`_names` the package itself defines: functions, methods, classes, its own attributes
    (set on self or cls), variables and arguments."""
    names: set[str] = set()
    for path in CODE:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                names.add(node.name)
            elif (
                isinstance(node, ast.Attribute)
                and isinstance(node.ctx, ast.Store)
                and isinstance(node.value, ast.Name)
                and node.value.id in {"self", "cls"}
            ):
                names.add(node.attr)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                names.add(node.id)
            elif isinstance(node, ast.arg):
                names.add(node.arg)
    return {name for name in names if name.startswith("_")}


@pytest.mark.parametrize("path", CODE, ids=lambda path: f"{path.parent.name}/{path.name}")
def test_no_module_imports_more_than_seven_of_its_siblings(path: Path) -> None:
    # Given a module of the package (or a function's handler)
    tree = ast.parse(path.read_text())
    # When its imports of the package are counted
    imported = siblings_imported(tree) - {path.stem}
    # Then there are at most seven: more is a hub that every change lands in
    assert len(imported) <= MAX_SIBLINGS, sorted(imported)


def test_no_private_attribute_of_a_library_is_touched() -> None:
    # Given every `x._name` the code reads or calls, where x is not self or cls
    ours = private_names_defined_here()
    touched = {
        f"{path.name}:{node.lineno} .{node.attr}"
        for path in CODE
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Attribute)
        and node.attr.startswith("_")
        and not node.attr.startswith("__")
        and not (isinstance(node.value, ast.Name) and node.value.id in {"self", "cls"})
        and node.attr not in ours
    }
    # Then each is a name this package defines itself, never a library's private
    assert touched == set()

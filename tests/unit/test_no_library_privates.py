"""Nothing reaches into a library's privates (Powertools' least of all: a private attribute can
change in any release). The package's direction is import-linter's (`make lint`)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "layers" / "common" / "imagegateway"
CODE = sorted(
    [*PACKAGE.rglob("*.py"), *(PACKAGE.parents[2] / "functions").glob("*/app.py")],
    key=str,
)


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

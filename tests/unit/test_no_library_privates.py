"""Nothing reaches into a library's privates (Powertools' least of all: a private attribute can
change in any release): not the package, not the functions, not local/. The package's direction is
import-linter's (`make lint`).

local/ patches moto where moto leaves no public way; each such access is in `ALLOWED`, with why.
A new private access anywhere fails this test, and so does an allowance no longer used."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "layers" / "common" / "imagegateway"
LOCAL = ROOT / "local"
CODE = sorted(
    [*PACKAGE.rglob("*.py"), *(ROOT / "functions").glob("*/app.py"), *LOCAL.rglob("*.py")],
    key=str,
)

# "file:attribute" -> why it is touched: the only library privates this repository uses.
ALLOWED = {
    "local/aws/moto_patches.py:_invoke_lambda": (
        "moto's LambdaFunction runs a function's code in Docker; patching its invoke is the only"
        " way to run the real handler in-process, which the local stack's contract requires"
    ),
    "local/aws/moto_patches.py:_normalise_parameters": (
        "moto 5.2's states:startExecution integration hands the ASL's field names to boto3"
        " unchanged (every start fails); its parameter normalisation is the one place to map them"
    ),
    "local/stack/gateway_stack.py:_server_entry": (
        "moto's ThreadedMotoServer waits forever when it cannot bind its port; its thread's entry"
        " is overridden to report the error instead (moto has no startup-error hook)"
    ),
    "local/stack/gateway_stack.py:_server_ready_event": (
        "with it, the overridden entry releases ThreadedMotoServer.start(), which waits on it"
    ),
    "local/stack/__main__.py:_exit": (
        "os._exit: the standard library's documented immediate exit (no cleanup) for a second"
        " Ctrl-C; public despite its underscore"
    ),
}
OUR_PACKAGES = {"imagegateway", "local", "functions", "tests", ""}
# Calls whose second argument names an attribute: mock.patch.object(x, "_name"), setattr, getattr.
NAMING_CALLS = {"object", "setattr", "getattr", "hasattr", "delattr"}


def relative(path: Path) -> str:
    return path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else path.name


def is_private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def imported_from(node: ast.Import | ast.ImportFrom, alias: ast.alias) -> str:
    """The top-level package an imported name comes from ("" for a relative import)."""
    if isinstance(node, ast.ImportFrom):
        return "" if node.level else str(node.module).split(".")[0]
    return alias.name.split(".")[0]


def private_names_defined_here() -> tuple[set[str], dict[str, set[str]]]:
    """`_names` the code itself defines: functions, methods, classes, its own attributes (set on
    self or cls), variables and arguments; and, apart, the methods each class defines (an
    override of a library's private is not ours because it has the same name)."""
    names: set[str] = set()
    methods: dict[str, set[str]] = {}
    for path in CODE:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                methods.setdefault(node.name, set()).update(
                    item.name
                    for item in node.body
                    if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef)
                )
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
    return {name for name in names if is_private(name)}, methods


def touched_privates(path: Path, ours: set[str], methods: dict[str, set[str]]) -> set[str]:
    """Every private attribute the file reads, calls or names that the code does not define:
    `x._name` (x not self or cls), `super()._name` (unless another class of ours defines it),
    `self._name` that nothing of ours sets, any private of a name imported from a library
    (`os._exit`, even though `_exit` is also a name of ours), and `patch.object(x, "_name")`."""
    found: set[str] = set()
    tree = ast.parse(path.read_text())
    # Names this file imports from a library (os, moto...): their privates are never ours.
    libraries = {
        (alias.asname or alias.name).split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
        if imported_from(node, alias) not in OUR_PACKAGES
    }
    for cls in [node for node in ast.walk(tree) if isinstance(node, ast.ClassDef)]:
        others = set().union(*(m for name, m in methods.items() if name != cls.name))
        for node in ast.walk(cls):
            if (
                isinstance(node, ast.Attribute)
                and is_private(node.attr)
                and isinstance(node.value, ast.Call)
                and isinstance(node.value.func, ast.Name)
                and node.value.func.id == "super"
                and node.attr not in others
            ):
                found.add(node.attr)
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and is_private(node.attr):
            value = node.value
            if (
                isinstance(value, ast.Call)
                and isinstance(value.func, ast.Name)
                and value.func.id == "super"
            ):
                continue  # above
            from_library = isinstance(value, ast.Name) and value.id in libraries
            if from_library or node.attr not in ours:
                found.add(node.attr)
        elif isinstance(node, ast.Call) and len(node.args) >= 2:
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            attribute = node.args[1]
            if (
                name in NAMING_CALLS
                and isinstance(attribute, ast.Constant)
                and isinstance(attribute.value, str)
                and is_private(attribute.value)
                and attribute.value not in ours
            ):
                found.add(attribute.value)
    return {f"{relative(path)}:{name}" for name in found}


def test_no_private_attribute_of_a_library_is_touched() -> None:
    # Given every private attribute the code touches that it does not define itself
    ours, methods = private_names_defined_here()
    touched = set().union(*(touched_privates(path, ours, methods) for path in CODE))
    # Then each is one of the allowances, each of which is still needed
    assert sorted(touched - ALLOWED.keys()) == []
    assert sorted(ALLOWED.keys() - touched) == []


def test_a_new_private_access_would_be_caught(tmp_path: Path) -> None:
    # Given code that touches library privates in each of the ways the test knows
    sample = tmp_path / "sample.py"
    sample.write_text(
        "import os\n"
        "from unittest import mock\n"
        "class LibraryServer(Base):\n"
        "    def _library_entry(self):\n"
        "        super()._library_entry()\n"
        "        self._library_event.set()\n"
        "mock.patch.object(Base, '_library_invoke', None)\n"
        "os._library_function()\n"
    )
    ours, methods = private_names_defined_here()
    ours |= {"_library_entry"}  # the override defines it, as the moto server's does
    methods["LibraryServer"] = {"_library_entry"}
    # Then every one of them is reported
    names = {entry.split(":", 1)[1] for entry in touched_privates(sample, ours, methods)}
    assert names == {"_library_entry", "_library_event", "_library_invoke", "_library_function"}

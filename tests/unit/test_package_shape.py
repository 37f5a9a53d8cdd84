"""The package's shape: its wings are subpackages, and no module is a lump. Which wing may import
which is import-linter's to hold (`make lint`, pyproject.toml)."""

from __future__ import annotations

from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "layers" / "common" / "imagegateway"
WINGS = ("domain", "platform", "adapters", "use_cases", "entrypoints")
MAX_LINES = 400


def test_the_package_is_its_wings() -> None:
    # Given the package's top level
    top = {path.name for path in PACKAGE.iterdir() if path.name != "__pycache__"}
    # Then it holds the wings as subpackages, and nothing else but its own __init__
    assert top == {*WINGS, "__init__.py"}
    for wing in WINGS:
        assert (PACKAGE / wing / "__init__.py").is_file()


@pytest.mark.parametrize(
    "path", sorted(PACKAGE.rglob("*.py")), ids=lambda path: str(path.relative_to(PACKAGE))
)
def test_no_module_is_over_400_lines(path: Path) -> None:
    # Given a module of the package / When its lines are counted
    lines = len(path.read_text("utf-8").splitlines())
    # Then it is small enough to read at once
    assert lines <= MAX_LINES, f"{path.name}: {lines} lines"

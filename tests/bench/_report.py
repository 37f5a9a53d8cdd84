"""Plain-text tables and the little statistics the benchmarks print."""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence

MIB = 1024 * 1024


def median(values: Iterable[float]) -> float:
    data = list(values)
    return statistics.median(data) if data else 0.0


def mib(size: float) -> str:
    return f"{size / MIB:.1f}"


def per_1000(amount: float) -> str:
    """A per-unit dollar amount shown per 1,000 units (sub-cent figures stay readable)."""
    return f"{amount * 1000:.4f}"


def title(text: str) -> None:
    print()
    print(text)
    print("=" * len(text))


def table(headers: Sequence[str], rows: Sequence[Sequence[object]], *, indent: int = 0) -> None:
    """Print an aligned table: text columns left-aligned, everything else right-aligned."""
    cells = [[str(cell) for cell in row] for row in rows]
    widths = [
        max([len(header), *(len(row[i]) for row in cells)]) for i, header in enumerate(headers)
    ]
    numeric = [
        all(_looks_numeric(row[i]) for row in cells) if cells else False
        for i in range(len(headers))
    ]
    pad = " " * indent

    def line(values: Sequence[str]) -> str:
        parts = [
            value.rjust(width) if is_number else value.ljust(width)
            for value, width, is_number in zip(values, widths, numeric, strict=True)
        ]
        return pad + "  ".join(parts).rstrip()

    print(line(list(headers)))
    print(pad + "  ".join("-" * width for width in widths))
    for row in cells:
        print(line(row))


def _looks_numeric(text: str) -> bool:
    stripped = text.strip().lstrip("$~").rstrip("%x").replace(",", "")
    if not stripped or stripped == "-":
        return True
    try:
        float(stripped)
    except ValueError:
        return False
    return True


def note(text: str) -> None:
    print(f"  {text}")

"""Benchmarks (`make bench`): figures only, never assertions.

Files are named bench_*.py so pytest never collects them. Importing this package sets the same
safe AWS environment as the tests (tests/support/environment.py), so no benchmark can ever
reach a real AWS account. The layer's package comes from .venv (`make install` installs it).
"""

from __future__ import annotations

from pathlib import Path

import tests.support.environment  # noqa: F401  (the same safe AWS environment)

REPO = Path(__file__).resolve().parents[2]

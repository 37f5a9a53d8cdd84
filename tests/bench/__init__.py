"""Benchmarks (`make bench`): figures only, never assertions.

Files are named bench_*.py so pytest never collects them. Importing this package sets the same
safe AWS environment as the tests (tests/support/environment.py), so no benchmark can ever
reach a real AWS account, and puts the layer's package on sys.path.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

if str(REPO / "layers" / "common") not in sys.path:
    sys.path.insert(0, str(REPO / "layers" / "common"))

import tests.support.environment  # noqa: E402, F401  (the same safe AWS environment)

"""Benchmarks (`make bench`): figures only, never assertions.

Files are named bench_*.py so pytest never collects them. Importing this package sets the same
safe AWS environment as tests/conftest.py (fake credentials, no endpoint, no profile), so no
benchmark can ever reach a real AWS account, and puts the layer's package on sys.path.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

if str(REPO / "layers" / "common") not in sys.path:
    sys.path.insert(0, str(REPO / "layers" / "common"))

os.environ.update(
    {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_SERVICE_NAME": "imagepipeline-gateway",
        "POWERTOOLS_METRICS_NAMESPACE": "ImagepipelineGateway",
    }
)
os.environ.pop("AWS_ENDPOINT_URL", None)
os.environ.pop("AWS_PROFILE", None)

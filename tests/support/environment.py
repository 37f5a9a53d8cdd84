"""The safe AWS environment every test and benchmark runs in: fake credentials, one region,
no endpoint override, no profile, so nothing can reach a real AWS account. Import this module
before anything creates a boto3 client or a Powertools Logger (they read the environment)."""

from __future__ import annotations

import os

SAFE_ENVIRONMENT = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "POWERTOOLS_TRACE_DISABLED": "true",
    "POWERTOOLS_SERVICE_NAME": "imagepipeline-gateway",
    "POWERTOOLS_METRICS_NAMESPACE": "ImagepipelineGateway",
    "POWERTOOLS_LOG_LEVEL": "WARNING",
}

os.environ.update(SAFE_ENVIRONMENT)
os.environ.pop("AWS_ENDPOINT_URL", None)
os.environ.pop("AWS_PROFILE", None)

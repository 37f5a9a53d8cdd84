"""Shared by every test: a safe AWS environment, sample events, and fresh caches per test."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

# Set before anything creates a boto3 client: no test may ever reach a real AWS account.
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
        "POWERTOOLS_LOG_LEVEL": "WARNING",
    }
)
os.environ.pop("AWS_ENDPOINT_URL", None)
os.environ.pop("AWS_PROFILE", None)

# Imported after the environment is set: Powertools reads it when these modules load.
from local.fake_upstream import FakeUpstream
from tests.support.stack import UPSTREAM_KEY


@pytest.fixture(autouse=True)
def fresh_caches() -> Iterator[None]:
    from tests.support.caches import clear_all

    clear_all()
    yield
    clear_all()


@pytest.fixture(scope="session")
def fake_upstream_server() -> Iterator[FakeUpstream]:
    """One fake upstream for the session, on a free port (integration and workflow tests)."""
    with FakeUpstream(api_key=UPSTREAM_KEY, pending_polls=2) as server:
        yield server


@pytest.fixture
def upstream(fake_upstream_server: FakeUpstream) -> FakeUpstream:
    """The fake upstream, with its jobs, counters and key reset for this test."""
    fake_upstream_server.reset()
    fake_upstream_server.api_key = UPSTREAM_KEY
    fake_upstream_server.pending_polls = 2
    return fake_upstream_server

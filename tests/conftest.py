"""Shared by every test: a safe AWS environment, sample events, and fresh caches per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import tests.support.environment  # noqa: F401  (first: sets the safe AWS environment)

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

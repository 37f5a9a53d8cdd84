"""Workflow tests: the real statemachine/ file run by moto's ASL interpreter, its tasks
dispatched to the real handlers in-process, against the fake upstream over real HTTP."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from local.aws_stack import LocalStack, handlers_in_process
from local.fake_upstream import FakeUpstream
from tests.support.stack import UPSTREAM_KEY, moto_stack


@pytest.fixture(scope="session")
def fake_upstream_server() -> Iterator[FakeUpstream]:
    with FakeUpstream(api_key=UPSTREAM_KEY, pending_polls=2) as server:
        yield server


@pytest.fixture
def upstream(fake_upstream_server: FakeUpstream) -> FakeUpstream:
    fake_upstream_server.reset()
    return fake_upstream_server


@pytest.fixture
def stack(upstream: FakeUpstream, monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalStack]:
    with moto_stack(upstream, monkeypatch, execute_state_machine=True) as built:
        yield built


@pytest.fixture
def invocations(stack: LocalStack) -> Iterator[list[dict[str, object]]]:
    with handlers_in_process(stack) as calls:
        yield calls

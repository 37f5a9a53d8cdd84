"""Workflow tests: the real statemachine/ file run by moto's ASL interpreter, its tasks
dispatched to the real handlers in-process, against the fake upstream over real HTTP."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from local.aws.moto_patches import handlers_in_process
from local.aws.resources import LocalStack
from local.fake_upstream import FakeUpstream
from tests.support.stack import moto_stack


@pytest.fixture
def stack(upstream: FakeUpstream, monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalStack]:
    with moto_stack(upstream, monkeypatch, execute_state_machine=True) as built:
        yield built


@pytest.fixture
def invocations(stack: LocalStack) -> Iterator[list[dict[str, object]]]:
    with handlers_in_process(stack) as calls:
        yield calls

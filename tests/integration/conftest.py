"""Integration tests: the handlers against moto (built from template.yaml) and the fake
upstream over real HTTP."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from local.aws.resources import LocalStack
from local.fake_upstream import FakeUpstream
from tests.support.stack import moto_stack


@pytest.fixture
def stack(upstream: FakeUpstream, monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalStack]:
    with moto_stack(upstream, monkeypatch) as built:
        yield built

"""The template tests' fixtures: the template and the ASL as read, the template translated
offline (as CloudFormation would receive it), and sockets blocked while a test runs.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import pytest_socket

from tests.template.support import (
    flatten_definition_strings,
    load_asl,
    load_template,
    translate_offline,
)


@contextmanager
def sockets_blocked() -> Iterator[None]:
    pytest_socket.disable_socket(allow_unix_socket=True)
    try:
        yield
    finally:
        pytest_socket.enable_socket()


@pytest.fixture
def no_network() -> Iterator[None]:
    # Function-scoped, so it starts after the suite-wide autouse fixtures (which may open
    # a local UDP socket for the X-Ray emitter); module fixtures block sockets themselves.
    # The template's test modules use it (pytestmark); test_layer.py and its neighbours do not.
    with sockets_blocked():
        yield


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template()


@pytest.fixture(scope="module")
def asl() -> dict[str, Any]:
    return load_asl()


@pytest.fixture(scope="module")
def translated(template: dict[str, Any]) -> dict[str, Any]:
    """The template as CloudFormation would receive it, translated offline."""
    with sockets_blocked():
        cfn = translate_offline(template)
    flatten_definition_strings(cfn)
    return cfn

"""Unit tests run with sockets disabled: no network, no moto server, no fake upstream."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import pytest_socket


@pytest.fixture(autouse=True)
def no_network() -> Iterator[None]:
    pytest_socket.disable_socket(allow_unix_socket=True)
    yield
    pytest_socket.enable_socket()


@pytest.fixture
def settings_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOBS_TABLE_NAME", "jobs-table")
    monkeypatch.setenv("IMAGES_BUCKET_NAME", "images-bucket")
    monkeypatch.setenv("UPSTREAM_BASE_URL", "https://upstream.test")
    monkeypatch.setenv("UPSTREAM_API_KEY_SECRET_NAME", "upstream-key")

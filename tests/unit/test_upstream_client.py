"""How the client maps every kind of upstream answer to a typed result or a typed error."""

from __future__ import annotations

import pytest
import requests
import responses
from urllib3.exceptions import MaxRetryError, NewConnectionError, ProtocolError

from imagegateway import upstream as upstream_module
from imagegateway.errors import (
    ConfigurationError,
    UpstreamAuthError,
    UpstreamProtocolError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
)
from imagegateway.models import JobStatus, Text2ImageRequest
from imagegateway.settings import get_settings
from imagegateway.upstream import UpstreamClient, upstream_api_key

SUBMIT = "https://upstream.test/sd/text2image/v1"
STATUS = "https://upstream.test/sd/text2image/v1/status/job-1"
REQUEST = Text2ImageRequest(model_id="sd1.5", prompt="a red fox")


@pytest.fixture
def client(settings_env: None, monkeypatch: pytest.MonkeyPatch) -> UpstreamClient:
    monkeypatch.setattr(upstream_module, "upstream_api_key", lambda settings: "secret-key")
    return UpstreamClient(get_settings())


@responses.activate
def test_pending_answer_with_id(client: UpstreamClient) -> None:
    # Given the upstream accepts the job
    responses.post(SUBMIT, json={"status": "PENDING", "id": "job-1"})
    # When it is submitted
    answer = client.submit(REQUEST)
    # Then the answer is PENDING with the upstream's id, sent with the API key and the body
    assert (answer.status, answer.id) == (JobStatus.PENDING, "job-1")
    sent = responses.calls[0].request
    assert sent.headers["API-Key"] == "secret-key"
    assert sent.body is not None
    assert b'"prompt": "a red fox"' in sent.body.replace(b'":"', b'": "')


@responses.activate
def test_success_answer_with_urls(client: UpstreamClient) -> None:
    responses.post(
        SUBMIT, json={"status": "SUCCESS", "id": 7, "download_urls": ["https://x/0.png"]}
    )
    answer = client.submit(REQUEST)
    assert answer.status is JobStatus.SUCCESS
    assert answer.id == "7"
    assert answer.download_urls == ["https://x/0.png"]


@responses.activate
def test_failure_answer_is_a_result_with_its_message(client: UpstreamClient) -> None:
    responses.post(SUBMIT, json={"status": "FAILURE", "error": "model not found"})
    answer = client.submit(REQUEST)
    assert (answer.status, answer.error) == (JobStatus.FAILURE, "model not found")


@responses.activate
def test_failure_answer_with_a_4xx_keeps_the_upstreams_message(client: UpstreamClient) -> None:
    responses.post(SUBMIT, status=400, json={"status": "FAILURE", "error": "bad width"})
    assert client.submit(REQUEST).error == "bad width"


@responses.activate
def test_failure_without_a_message_gets_one(client: UpstreamClient) -> None:
    responses.post(SUBMIT, json={"status": "FAILURE"})
    assert client.submit(REQUEST).error


@responses.activate
def test_pending_without_an_id_is_a_protocol_error(client: UpstreamClient) -> None:
    responses.post(SUBMIT, json={"status": "PENDING"})
    with pytest.raises(UpstreamProtocolError):
        client.submit(REQUEST)


@pytest.mark.parametrize(
    ("status", "body", "error"),
    [
        (401, '{"status": "FAILURE", "error": "invalid key"}', UpstreamAuthError),
        (403, "forbidden", UpstreamAuthError),
        (429, "slow down", UpstreamUnavailableError),
        (500, "internal error", UpstreamUnavailableError),
        (503, "<html>maintenance</html>", UpstreamUnavailableError),
        (200, "<html>not json</html>", UpstreamProtocolError),
        (200, '{"status": "MAYBE"}', UpstreamProtocolError),
        (200, "[]", UpstreamProtocolError),
        (404, "not found", UpstreamProtocolError),
        (400, '{"status": "PENDING", "id": "x"}', UpstreamProtocolError),
    ],
)
@responses.activate
def test_unusable_answers_are_typed_errors(
    client: UpstreamClient, status: int, body: str, error: type[Exception]
) -> None:
    responses.post(SUBMIT, status=status, body=body)
    with pytest.raises(error):
        client.submit(REQUEST)


@responses.activate
def test_a_connection_that_never_opened_is_unavailable(client: UpstreamClient) -> None:
    refused = requests.ConnectionError(
        MaxRetryError(None, SUBMIT, NewConnectionError(None, "refused"))  # type: ignore[arg-type]
    )
    responses.post(SUBMIT, body=refused)
    with pytest.raises(UpstreamUnavailableError):
        client.submit(REQUEST)


@responses.activate
def test_a_connect_timeout_is_unavailable(client: UpstreamClient) -> None:
    responses.post(SUBMIT, body=requests.ConnectTimeout("connect timed out"))
    with pytest.raises(UpstreamUnavailableError):
        client.submit(REQUEST)


@pytest.mark.parametrize(
    "exc",
    [
        requests.ReadTimeout("read timed out"),
        requests.ConnectionError(ProtocolError("Connection aborted.", ConnectionResetError())),
    ],
)
@responses.activate
def test_a_post_that_may_have_arrived_is_a_timeout_not_a_retry(
    client: UpstreamClient, exc: Exception
) -> None:
    # Given the connection breaks after the POST was sent
    responses.post(SUBMIT, body=exc)
    # When it is submitted
    # Then the error says the job may exist, and the POST was sent exactly once
    with pytest.raises(UpstreamTimeoutError):
        client.submit(REQUEST)
    assert len(responses.calls) == 1


@responses.activate
def test_status_answers_map_like_submit(client: UpstreamClient) -> None:
    responses.get(STATUS, json={"status": "PENDING", "id": "job-1"})
    assert client.status("job-1").status is JobStatus.PENDING


@responses.activate
def test_status_of_a_job_the_upstream_forgot_is_a_failure_result(client: UpstreamClient) -> None:
    responses.get(STATUS, status=404, json={"status": "FAILURE", "error": "no such job"})
    answer = client.status("job-1")
    assert (answer.status, answer.error) == (JobStatus.FAILURE, "no such job")


@responses.activate
def test_status_network_errors_are_unavailable(client: UpstreamClient) -> None:
    responses.get(STATUS, body=requests.ConnectionError("reset"))
    with pytest.raises(UpstreamUnavailableError):
        client.status("job-1")


def test_submit_session_never_retries_a_post_that_was_sent() -> None:
    retry = upstream_module.submit_session().adapters["https://"].max_retries
    assert retry.read == 0
    assert retry.status == 0
    assert "POST" not in (retry.allowed_methods or ())


def test_status_session_retries_429_and_5xx_with_backoff() -> None:
    retry = upstream_module.retrying_get_session().adapters["https://"].max_retries
    assert {429, 500, 502, 503, 504} <= set(retry.status_forcelist or ())
    assert retry.backoff_factor > 0
    assert retry.respect_retry_after_header


@pytest.mark.parametrize(
    ("stored", "expected"),
    [
        ("plain-key", "plain-key"),
        ('{"api_key": "json-key"}', "json-key"),
        (b"bytes-key", "bytes-key"),
    ],
)
def test_api_key_secret_forms(
    settings_env: None, monkeypatch: pytest.MonkeyPatch, stored: str | bytes, expected: str
) -> None:
    monkeypatch.setattr(upstream_module.parameters, "get_secret", lambda name, max_age: stored)
    assert upstream_api_key(get_settings()) == expected


@pytest.mark.parametrize("stored", ["", '{"other": 1}'])
def test_unusable_api_key_secret_is_a_configuration_error(
    settings_env: None, monkeypatch: pytest.MonkeyPatch, stored: str
) -> None:
    monkeypatch.setattr(upstream_module.parameters, "get_secret", lambda name, max_age: stored)
    with pytest.raises(ConfigurationError):
        upstream_api_key(get_settings())

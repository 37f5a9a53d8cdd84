"""How the client maps every kind of upstream answer to a typed result or a typed error."""

from __future__ import annotations

import pytest
import requests
import responses
from aws_lambda_powertools.utilities import parameters
from urllib3.exceptions import MaxRetryError, NewConnectionError, ProtocolError

from imagegateway.adapters import upstream_client as upstream_module
from imagegateway.adapters.upstream_client import UpstreamClient, upstream_api_key
from imagegateway.domain.base import JobKind, JobStatus
from imagegateway.domain.errors import (
    ConfigurationError,
    UpstreamAuthError,
    UpstreamKeyMissingError,
    UpstreamOutcomeUnknownError,
    UpstreamProtocolError,
    UpstreamRateLimitedError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
)
from imagegateway.domain.request_kinds import Text2ImageRequest
from imagegateway.platform.settings import get_settings
from imagegateway.platform.time_budget import invocation_budget

SUBMIT = "https://upstream.test/sd/text2image/v1"
STATUS = "https://upstream.test/sd/text2image/v1/status/job-1"
BODY = Text2ImageRequest(model_id="sd1.5", prompt="a red fox").upstream_body()


@pytest.fixture
def client(settings_env: None, monkeypatch: pytest.MonkeyPatch) -> UpstreamClient:
    monkeypatch.setattr(upstream_module, "upstream_api_key", lambda settings: "secret-key")
    return UpstreamClient(get_settings())


@responses.activate
def test_pending_answer_with_id(client: UpstreamClient) -> None:
    # Given the upstream accepts the job
    responses.post(SUBMIT, json={"status": "PENDING", "id": "job-1"})
    # When it is submitted
    answer = client.submit(JobKind.TEXT2IMAGE, BODY)
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
    answer = client.submit(JobKind.TEXT2IMAGE, BODY)
    assert answer.status is JobStatus.SUCCESS
    assert answer.id == "7"
    assert answer.download_urls == ["https://x/0.png"]


@responses.activate
def test_failure_answer_is_a_result_with_its_message(client: UpstreamClient) -> None:
    responses.post(SUBMIT, json={"status": "FAILURE", "error": "model not found"})
    answer = client.submit(JobKind.TEXT2IMAGE, BODY)
    assert (answer.status, answer.error) == (JobStatus.FAILURE, "model not found")


@responses.activate
def test_failure_answer_with_a_4xx_keeps_the_upstreams_message(client: UpstreamClient) -> None:
    responses.post(SUBMIT, status=400, json={"status": "FAILURE", "error": "bad width"})
    assert client.submit(JobKind.TEXT2IMAGE, BODY).error == "bad width"


@responses.activate
def test_failure_without_a_message_gets_one(client: UpstreamClient) -> None:
    responses.post(SUBMIT, json={"status": "FAILURE"})
    assert client.submit(JobKind.TEXT2IMAGE, BODY).error


@responses.activate
def test_pending_without_an_id_may_hide_an_accepted_job(client: UpstreamClient) -> None:
    # Given the upstream took the job but did not say its id
    responses.post(SUBMIT, json={"status": "PENDING"})
    # Then the outcome is unknown (the upstream may hold and charge it), not "unreachable"
    with pytest.raises(UpstreamOutcomeUnknownError):
        client.submit(JobKind.TEXT2IMAGE, BODY)


@pytest.mark.parametrize(
    ("status", "body", "error"),
    [
        (401, '{"status": "FAILURE", "error": "invalid key"}', UpstreamAuthError),
        (403, "forbidden", UpstreamAuthError),
        # Refused before taking the job: safe to send again later.
        (429, "slow down", UpstreamRateLimitedError),
        # A 5xx may come from a load balancer after the origin took the job.
        (500, "internal error", UpstreamOutcomeUnknownError),
        (502, "<html>bad gateway</html>", UpstreamOutcomeUnknownError),
        (503, "<html>maintenance</html>", UpstreamOutcomeUnknownError),
        (504, "<html>gateway timeout</html>", UpstreamOutcomeUnknownError),
        # A 2xx the gateway cannot read may be an accepted job.
        (200, "<html>not json</html>", UpstreamOutcomeUnknownError),
        (200, '{"status": "MAYBE"}', UpstreamOutcomeUnknownError),
        (200, "[]", UpstreamOutcomeUnknownError),
        # A 4xx is a refusal.
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
        client.submit(JobKind.TEXT2IMAGE, BODY)


@responses.activate
def test_a_connection_that_never_opened_is_unavailable(client: UpstreamClient) -> None:
    refused = requests.ConnectionError(
        MaxRetryError(None, SUBMIT, NewConnectionError(None, "refused"))  # type: ignore[arg-type]
    )
    responses.post(SUBMIT, body=refused)
    with pytest.raises(UpstreamUnavailableError):
        client.submit(JobKind.TEXT2IMAGE, BODY)


@responses.activate
def test_a_connect_timeout_is_unavailable(client: UpstreamClient) -> None:
    responses.post(SUBMIT, body=requests.ConnectTimeout("connect timed out"))
    with pytest.raises(UpstreamUnavailableError):
        client.submit(JobKind.TEXT2IMAGE, BODY)


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
        client.submit(JobKind.TEXT2IMAGE, BODY)
    assert len(responses.calls) == 1


@responses.activate
def test_status_answers_map_like_submit(client: UpstreamClient) -> None:
    responses.get(STATUS, json={"status": "PENDING", "id": "job-1"})
    assert client.status(JobKind.TEXT2IMAGE, "job-1").status is JobStatus.PENDING


@responses.activate
def test_status_of_a_job_the_upstream_forgot_is_a_failure_result(client: UpstreamClient) -> None:
    responses.get(STATUS, status=404, json={"status": "FAILURE", "error": "no such job"})
    answer = client.status(JobKind.TEXT2IMAGE, "job-1")
    assert (answer.status, answer.error) == (JobStatus.FAILURE, "no such job")


@responses.activate
def test_status_network_errors_are_unavailable(client: UpstreamClient) -> None:
    responses.get(STATUS, body=requests.ConnectionError("reset"))
    with pytest.raises(UpstreamUnavailableError):
        client.status(JobKind.TEXT2IMAGE, "job-1")


@responses.activate
def test_a_redirected_submit_is_not_followed_and_the_key_goes_nowhere_else(
    client: UpstreamClient,
) -> None:
    # Given the upstream answers the POST with a redirect to another host
    responses.post(SUBMIT, status=307, headers={"Location": "http://collector.test/steal"})
    responses.post("http://collector.test/steal", json={"status": "PENDING", "id": "x"})
    # When the job is submitted
    with pytest.raises(UpstreamOutcomeUnknownError):
        client.submit(JobKind.TEXT2IMAGE, BODY)
    # Then only the upstream was called: the key never left for the other host
    assert [call.request.url for call in responses.calls] == [SUBMIT]


@responses.activate
def test_a_redirected_status_check_is_not_followed(client: UpstreamClient) -> None:
    responses.get(STATUS, status=302, headers={"Location": "https://collector.test/x"})
    responses.get("https://collector.test/x", json={"status": "PENDING", "id": "job-1"})
    with pytest.raises(UpstreamProtocolError):
        client.status(JobKind.TEXT2IMAGE, "job-1")
    assert [call.request.url for call in responses.calls] == [STATUS]


@responses.activate
def test_a_long_retry_after_is_handed_back_not_slept(
    client: UpstreamClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the upstream rate-limits status checks for an hour
    slept: list[float] = []
    monkeypatch.setattr("time.sleep", slept.append)
    responses.get(STATUS, status=429, headers={"Retry-After": "3600"}, body="slow down")
    # When the job's status is checked
    with pytest.raises(UpstreamRateLimitedError) as raised:
        client.status(JobKind.TEXT2IMAGE, "job-1")
    # Then nothing sleeps here: the wait is handed back to the state machine
    assert raised.value.retry_after == 3600
    assert slept == []
    assert len(responses.calls) == 1


class _Context:
    def __init__(self, remaining_ms: int) -> None:
        self.remaining_ms = remaining_ms

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


@responses.activate
def test_retries_stop_where_the_invocation_would_end(
    client: UpstreamClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given an upstream that keeps answering 503
    slept: list[float] = []
    monkeypatch.setattr("time.sleep", slept.append)
    responses.get(STATUS, status=503, body="busy")
    # When the status is checked with 14 s left in the invocation (12 s after the safety
    # margin): one attempt fits, a wait plus a second attempt of up to 3.05 + 10 s does not
    with invocation_budget(_Context(remaining_ms=14_000)), pytest.raises(UpstreamUnavailableError):
        client.status(JobKind.TEXT2IMAGE, "job-1")
    # Then it gave up at once, with a typed error the state machine retries, instead of
    # being killed by the function's timeout
    assert len(responses.calls) == 1
    assert slept == []


@responses.activate
def test_retries_go_on_while_they_fit(
    client: UpstreamClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("time.sleep", lambda seconds: None)
    responses.get(STATUS, status=503, body="busy")
    with invocation_budget(_Context(remaining_ms=120_000)), pytest.raises(UpstreamUnavailableError):
        client.status(JobKind.TEXT2IMAGE, "job-1")
    assert len(responses.calls) == 5


@responses.activate
def test_no_call_starts_without_time_for_an_answer(client: UpstreamClient) -> None:
    responses.post(SUBMIT, json={"status": "PENDING", "id": "job-1"})
    with invocation_budget(_Context(remaining_ms=3_000)), pytest.raises(UpstreamUnavailableError):
        client.submit(JobKind.TEXT2IMAGE, BODY)
    assert len(responses.calls) == 0


@responses.activate
def test_the_read_timeout_shrinks_to_the_time_left(client: UpstreamClient) -> None:
    responses.post(SUBMIT, json={"status": "PENDING", "id": "job-1"})
    with invocation_budget(_Context(remaining_ms=30_000)):
        client.submit(JobKind.TEXT2IMAGE, BODY)
    connect, read = responses.calls[0].request.req_kwargs["timeout"]
    # 30 s minus the 2 s safety margin minus the connect timeout, not the 100 s setting
    assert read <= 30 - 2 - connect + 0.5


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
    monkeypatch.setattr(parameters, "get_secret", lambda name, max_age: stored)
    assert upstream_api_key(get_settings()) == expected


def test_an_empty_secret_is_an_unconfigured_upstream(
    settings_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(parameters, "get_secret", lambda name, max_age: "  ")
    with pytest.raises(UpstreamKeyMissingError):
        upstream_api_key(get_settings())


@pytest.mark.parametrize("stored", ["", '{"other": 1}'])
def test_unusable_api_key_secret_is_a_configuration_error(
    settings_env: None, monkeypatch: pytest.MonkeyPatch, stored: str
) -> None:
    monkeypatch.setattr(parameters, "get_secret", lambda name, max_age: stored)
    with pytest.raises(ConfigurationError):
        upstream_api_key(get_settings())

"""Webhooks: the message, its Standard Webhooks signature (checked with the independent
`standardwebhooks` package), the retry schedule, the URL rules, and one attempt's request.

Sockets are disabled here: names are resolved by injected resolvers, and the one request sent
goes to a stand-in connection pool.
"""

from __future__ import annotations

import base64
import json
import socket
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook
from urllib3.exceptions import NewConnectionError, ReadTimeoutError

from imagegateway.adapters import webhooks
from imagegateway.adapters.attempt_deadline import AttemptDeadline
from imagegateway.adapters.downloads import DownloadTarget
from imagegateway.adapters.webhook_secrets import signing_key, webhook_signing_secret
from imagegateway.adapters.webhooks import (
    MAX_ATTEMPTS,
    RETRY_SCHEDULE_SECONDS,
    WebhookDeliveryError,
    WebhookMessage,
    WebhookNotAttempted,
    WebhookQueue,
    WebhookRejectedError,
    WebhookSender,
    check_webhook_url,
    next_delay_seconds,
    sign,
    signed_headers,
    webhook_message,
)
from imagegateway.domain.base import JobStatus
from imagegateway.domain.errors import ConfigurationError, RetryLater
from imagegateway.domain.events import Completion, CompletionDetail
from imagegateway.entrypoints.webhook_queue import attempt_all, deliver_record
from imagegateway.platform.settings import Settings
from imagegateway.platform.time_budget import SAFETY_MARGIN_SECONDS, invocation_budget
from tests.support.events import load_event

DEPLOYED = Settings(jobs_table_name="jobs", images_bucket_name="images")
LOCAL = Settings(jobs_table_name="jobs", images_bucket_name="images", allow_insecure_downloads=True)
KEY = bytes(range(24))
BARE_SECRET = base64.b64encode(KEY).decode()
SECRET = f"whsec_{BARE_SECRET}"
JOB_ID = "3f2b8c1e-9d4a-4e7b-8a61-0c5d2e7f9a10"
COMPLETED_AT = datetime(2026, 11, 25, 16, 0, 14, tzinfo=UTC)
URL = "https://hooks.example.com/imagepipeline"
OWNER = "iam:AIDAEXAMPLEOWNER0001"
PUBLIC = "93.184.216.34"


def completion(status: JobStatus = JobStatus.SUCCESS, **fields: Any) -> Completion:
    detail = {
        "job_id": JOB_ID,
        "kind": "text2image",
        "status": status,
        "timings": {"created_at": COMPLETED_AT - timedelta(seconds=14)},
        **fields,
    }
    detail["timings"]["completed_at"] = COMPLETED_AT
    return Completion.of(CompletionDetail.model_validate(detail))


def resolving_to(*addresses: str) -> Any:
    def resolve(host: str) -> list[str]:
        return list(addresses)

    return resolve


# --- the message ----------------------------------------------------------------------------


def test_a_message_is_the_contract_body_with_an_id_stable_per_job() -> None:
    # Given one completed job
    done = completion(reference="order-42")
    # When its message is built twice, at different times (a retried task)
    first = webhook_message(URL, done, now=datetime.now(UTC), owner=OWNER)
    second = webhook_message(URL, done, now=datetime.now(UTC) + timedelta(minutes=3), owner=OWNER)
    # Then both carry the same id and the very same body text
    assert first.webhook_id == second.webhook_id == f"msg_{JOB_ID}"
    assert first.body == second.body
    assert first.job_id == JOB_ID
    # And the body is the contract's: the type, the completion's time, the detail without nulls
    body = json.loads(first.body)
    assert body == {
        "type": "image.succeeded",
        "timestamp": "2026-11-25T16:00:14Z",
        "data": done.detail.model_dump(mode="json", exclude_none=True),
    }
    assert "error" not in body["data"]


def test_a_failed_job_is_told_as_image_failed() -> None:
    # Given a job that failed
    failed = completion(
        JobStatus.FAILURE, error="the upstream failed", error_code="UPSTREAM_FAILURE"
    )
    # When its message is built
    body = json.loads(webhook_message(URL, failed, now=datetime.now(UTC), owner=OWNER).body)
    # Then its type says so, and the error is in the data
    assert body["type"] == "image.failed"
    assert body["data"]["error_code"] == "UPSTREAM_FAILURE"


def test_a_completion_without_job_or_timings_gets_a_random_id_and_now() -> None:
    # Given a completion of a request refused before any job existed
    refused = Completion.of(CompletionDetail(status=JobStatus.FAILURE, error="invalid"))
    now = datetime(2026, 11, 25, 17, 0, tzinfo=UTC)
    # When two messages are built for it
    first = webhook_message(URL, refused, now=now, owner=OWNER)
    second = webhook_message(URL, refused, now=now, owner=OWNER)
    # Then each has its own random msg_ id, tells no job, and is stamped with `now`
    assert first.webhook_id.startswith("msg_")
    assert len(first.webhook_id) == len("msg_") + 32
    assert first.webhook_id != second.webhook_id
    assert first.job_id is None
    assert json.loads(first.body)["timestamp"] == "2026-11-25T17:00:00Z"


def test_the_sample_event_carries_a_message() -> None:
    # Given the events/ sample of the deliver_webhook function
    record = load_event("deliver_webhook")["Records"][0]
    # When its body is read as a message
    message = WebhookMessage.model_validate_json(record["body"])
    # Then it is one job's webhook, with a contract body
    assert message.job_id == json.loads(message.body)["data"]["job_id"]
    assert record["attributes"]["ApproximateReceiveCount"] == "1"


# --- the signature --------------------------------------------------------------------------


@pytest.mark.parametrize("secret", [SECRET, BARE_SECRET], ids=["whsec", "bare"])
def test_the_signature_verifies_with_the_standard_webhooks_library(secret: str) -> None:
    # Given a message and a signing secret, with or without its whsec_ prefix
    message = webhook_message(URL, completion(), now=datetime.now(UTC), owner=OWNER)
    # When the headers of an attempt are signed now
    headers = signed_headers(message, secrets=[secret], timestamp=int(time.time()))
    # Then the reference library verifies them over the body, with either form of the secret
    for receiver_secret in (SECRET, BARE_SECRET):
        payload = Webhook(receiver_secret).verify(message.body, headers)
        assert payload == json.loads(message.body)
    assert headers["webhook-id"] == message.webhook_id
    assert headers["webhook-signature"].startswith("v1,")
    assert headers["content-type"] == "application/json"


def test_a_signature_covers_the_id_the_timestamp_and_the_body() -> None:
    # Given one signature
    signature = sign(SECRET, "msg_1", 1_800_000_000, "{}")
    # When any of the signed parts changes, Then the signature does too
    assert sign(SECRET, "msg_2", 1_800_000_000, "{}") != signature
    assert sign(SECRET, "msg_1", 1_800_000_001, "{}") != signature
    assert sign(SECRET, "msg_1", 1_800_000_000, "{ }") != signature


def test_an_unpadded_secret_is_read_as_the_reference_library_reads_it() -> None:
    # Given a key whose base64 has padding, written without it
    key = bytes(range(10))
    unpadded = base64.b64encode(key).decode().rstrip("=")
    # When it is read, Then it is the same key
    assert signing_key(f"whsec_{unpadded}") == key


@pytest.mark.parametrize("secret", ["whsec_not base64!", "", "whsec_"])
def test_a_secret_that_is_not_a_key_is_a_configuration_error(secret: str) -> None:
    with pytest.raises(ConfigurationError):
        signing_key(secret)


def test_no_signing_secret_name_is_a_configuration_error() -> None:
    # Given settings without the secret's name, When the secret is read, Then it names it
    with pytest.raises(ConfigurationError, match="WEBHOOK_SIGNING_SECRET_NAME"):
        webhook_signing_secret(DEPLOYED)


# --- the schedule ---------------------------------------------------------------------------


def test_the_schedule_is_eight_attempts_over_at_least_a_day() -> None:
    # Given the schedule after the first, immediate, attempt
    # Then it is Standard Webhooks' one: 8 attempts in all, spanning more than 24 hours
    assert RETRY_SCHEDULE_SECONDS == (5, 5 * 60, 30 * 60, 2 * 3600, 5 * 3600, 10 * 3600, 10 * 3600)
    assert MAX_ATTEMPTS == 8
    assert sum(RETRY_SCHEDULE_SECONDS) >= 24 * 3600
    # And each failed attempt is followed by the next delay, the last by none
    assert [next_delay_seconds(n) for n in range(1, MAX_ATTEMPTS + 1)] == [
        *RETRY_SCHEDULE_SECONDS,
        None,
    ]
    assert next_delay_seconds(MAX_ATTEMPTS + 5) is None


def test_attempts_are_numbered_from_one() -> None:
    with pytest.raises(ValueError, match="from 1"):
        next_delay_seconds(0)


# --- the URL rules --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "resolve"),
    [
        pytest.param("http://hooks.example.com/x", resolving_to(PUBLIC), id="http"),
        pytest.param("https://10.0.0.5/x", resolving_to(), id="private-ip-literal"),
        pytest.param("https://[::1]/x", resolving_to(), id="loopback-ipv6-literal"),
        pytest.param("https://hooks.example.com/x", resolving_to("169.254.169.254"), id="metadata"),
        pytest.param(
            "https://hooks.example.com/x", resolving_to(PUBLIC, "10.1.2.3"), id="one-private"
        ),
        pytest.param("https://user:pw@hooks.example.com/x", resolving_to(PUBLIC), id="credentials"),
        pytest.param("https://hooks.example.com:8443/x", resolving_to(PUBLIC), id="port"),
        pytest.param("https://hooks.example.com\\@evil.test/x", resolving_to(PUBLIC), id="slash"),
        pytest.param("ftp://hooks.example.com/x", resolving_to(PUBLIC), id="scheme"),
    ],
)
def test_deployed_webhook_urls_follow_the_download_rules(url: str, resolve: Any) -> None:
    # Given the deployed settings, When a hostile webhook URL is checked
    # Then it is refused for good (not retried)
    with pytest.raises(WebhookRejectedError, match="refusing the webhook URL"):
        check_webhook_url(url, DEPLOYED, resolve)


def test_any_public_https_host_is_allowed_without_the_download_allow_list() -> None:
    # Given a host that is not on the download allow-list but resolves to a public address
    # When it is checked as a webhook URL
    target = check_webhook_url(f"{URL}?token=abc", DEPLOYED, resolving_to(PUBLIC))
    # Then it is accepted, pinned to the address that was checked
    assert (target.scheme, target.host, target.port) == ("https", "hooks.example.com", 443)
    assert target.addresses == (PUBLIC,)
    assert target.request_target == "/imagepipeline?token=abc"


def test_the_local_stack_may_deliver_to_loopback_http() -> None:
    # Given the local stack's settings, When a loopback http URL on any port is checked
    target = check_webhook_url("http://127.0.0.1:8123/hook", LOCAL, resolving_to())
    # Then it is accepted as is
    assert (target.scheme, target.addresses, target.port) == ("http", ("127.0.0.1",), 8123)


def test_a_name_that_does_not_resolve_is_a_retried_failure() -> None:
    def unresolvable(host: str) -> list[str]:
        return []

    # Given a name that resolves to nothing (perhaps only for now)
    # When it is checked, Then the attempt fails, to be tried again (not refused for good)
    with pytest.raises(WebhookDeliveryError):
        check_webhook_url(URL, DEPLOYED, unresolvable)


# --- one attempt ----------------------------------------------------------------------------


class Answer:
    def __init__(self, status: int) -> None:
        self.status = status
        self.closed = self.released = False

    def close(self) -> None:
        self.closed = True

    def release_conn(self) -> None:
        self.released = True


class Pool:
    """A stand-in connection pool: keeps what it was asked, answers a status or raises."""

    def __init__(self, outcome: int | Exception) -> None:
        self.outcome = outcome
        self.calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
        self.pinned: tuple[str, AttemptDeadline | None] = ("", None)
        self.closed = False

    def urlopen(self, *args: Any, **kwargs: Any) -> Answer:
        self.calls.append((args, kwargs))
        if isinstance(self.outcome, Exception):
            raise self.outcome
        return Answer(self.outcome)

    def close(self) -> None:
        self.closed = True


def sender_with(pool: Pool, monkeypatch: pytest.MonkeyPatch, now: float) -> WebhookSender:
    def watched_pool(target: DownloadTarget, deadline: AttemptDeadline, **kwargs: Any) -> Pool:
        pool.pinned = (target.addresses[0], deadline)
        return pool

    monkeypatch.setattr(webhooks, "watched_pool", watched_pool)
    return WebhookSender(
        DEPLOYED,
        secrets=lambda owner: [SECRET],
        resolve=resolving_to(PUBLIC),
        clock=lambda: now,
    )


def test_an_attempt_posts_the_body_signed_now_to_the_checked_address(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a receiver that answers 204
    pool = Pool(204)
    now = time.time()
    message = webhook_message(URL, completion(), now=datetime.now(UTC), owner=OWNER)
    # When one attempt is made
    status = sender_with(pool, monkeypatch, now).deliver(message)
    # Then it was one POST of the exact body, for the name, never following a redirect
    assert status == 204
    [(args, kwargs)] = pool.calls
    assert args == ("POST", "/imagepipeline")
    assert kwargs["body"] == message.body.encode()
    assert kwargs["redirect"] is False
    assert kwargs["retries"] is False
    headers = kwargs["headers"]
    assert headers["Host"] == "hooks.example.com"
    assert headers["webhook-timestamp"] == str(int(now))
    assert headers["user-agent"]
    # And it had its own pool, pinned to the checked address, watched by the attempt's deadline
    # and closed after the attempt
    address, deadline = pool.pinned
    assert address == PUBLIC
    assert deadline is not None
    assert deadline.seconds == DEPLOYED.webhook_timeout_seconds
    assert pool.closed
    # And its connect and read timeouts are within the attempt's time (its deadline ends it)
    timeout = kwargs["timeout"]
    assert timeout.connect_timeout <= DEPLOYED.webhook_timeout_seconds / 2
    assert timeout.read_timeout <= DEPLOYED.webhook_timeout_seconds
    # And it verifies as signed at this attempt's time
    Webhook(SECRET).verify(kwargs["body"], headers)


@pytest.mark.parametrize(
    "outcome",
    [
        pytest.param(500, id="500"),
        pytest.param(410, id="410"),
        pytest.param(302, id="redirect"),
        pytest.param(ReadTimeoutError(None, "/", "read timed out"), id="timeout"),
        pytest.param(NewConnectionError(None, "refused"), id="no-connection"),
    ],
)
def test_anything_but_a_2xx_answer_fails_the_attempt(
    outcome: int | Exception, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a receiver that answers non-2xx, redirects, times out or cannot be reached
    sender = sender_with(Pool(outcome), monkeypatch, time.time())
    message = webhook_message(URL, completion(), now=datetime.now(UTC), owner=OWNER)
    # When an attempt is made, Then it failed (and will be tried again)
    with pytest.raises(WebhookDeliveryError):
        sender.deliver(message)


def test_a_refused_url_is_never_signed_or_sent(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a message to the metadata service
    pool = Pool(200)
    sender = sender_with(pool, monkeypatch, time.time())
    message = WebhookMessage(
        webhook_id="msg_x", url="https://169.254.169.254/latest", body="{}", owner=OWNER
    )
    # When an attempt is made, Then it is refused and nothing was sent
    with pytest.raises(WebhookRejectedError):
        sender.deliver(message)
    assert pool.calls == []


# --- the queue and the consumer -------------------------------------------------------------


def test_queueing_without_a_queue_url_is_a_configuration_error() -> None:
    message = webhook_message(URL, completion(), now=datetime.now(UTC), owner=OWNER)
    with pytest.raises(ConfigurationError, match="WEBHOOK_QUEUE_URL"):
        WebhookQueue(DEPLOYED).enqueue(message)


class FailingSender:
    def __init__(self, error: Exception) -> None:
        self.error = error

    def deliver(self, message: WebhookMessage) -> int:
        raise self.error


def sqs_record(body: str, receive_count: int = 1) -> Any:
    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

    record = load_event("deliver_webhook")["Records"][0]
    record["body"] = body
    record["attributes"]["ApproximateReceiveCount"] = str(receive_count)
    return SQSRecord(record)


def test_a_malformed_or_refused_message_is_dropped_not_retried() -> None:
    # Given a record that is not a message, and one whose URL is refused
    malformed = sqs_record('{"url": 1}')
    refused = sqs_record(
        WebhookMessage(
            webhook_id="msg_x", url="http://10.0.0.1/", body="{}", owner=OWNER
        ).model_dump_json()
    )
    sender: Any = FailingSender(WebhookRejectedError("refusing the webhook URL: http"))
    # When each is handled, Then neither raises (so neither comes back)
    deliver_record(malformed, sender)
    deliver_record(refused, sender)


def test_the_last_failed_attempt_is_left_to_the_dead_letter_queue() -> None:
    # Given the last attempt of the schedule, which fails
    record = sqs_record(load_event("deliver_webhook")["Records"][0]["body"], MAX_ATTEMPTS)
    sender: Any = FailingSender(WebhookDeliveryError("the webhook answered 500"))
    # When it is handled, Then it fails without asking SQS for another delay (sockets are off)
    with pytest.raises(WebhookDeliveryError):
        deliver_record(record, sender)


def test_no_attempt_is_started_without_time_for_a_whole_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given an invocation with 5 s left (after its safety margin), and attempts of 10 s
    pool = Pool(204)
    sender = sender_with(pool, monkeypatch, time.time())
    context = FakeContext(remaining_ms=int((SAFETY_MARGIN_SECONDS + 5) * 1000))
    message = webhook_message(URL, completion(), now=datetime.now(UTC), owner=OWNER)
    # When an attempt is asked for, Then none is made: cut short, it would fail a good receiver
    with invocation_budget(context), pytest.raises(WebhookNotAttempted):
        sender.deliver(message)
    assert pool.calls == []


def test_a_message_not_attempted_comes_back_at_once() -> None:
    # Given a record the sender had no time for
    record = sqs_record(load_event("deliver_webhook")["Records"][0]["body"])
    sender: Any = FailingSender(WebhookNotAttempted("no time"))
    # When it is handled, Then it is back on the queue now, not after a delay of the schedule
    with pytest.raises(RetryLater) as raised:
        deliver_record(record, sender)
    assert raised.value.seconds == 0


class FakeContext:
    def __init__(self, remaining_ms: int) -> None:
        self.remaining_ms = remaining_ms

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


# --- the deadline and the batch -------------------------------------------------------------


def test_the_deadline_ends_a_read_blocked_on_its_socket() -> None:
    # Given a connection whose peer never sends, watched by a deadline of 0.2 s
    ours, theirs = socket.socketpair()
    with ours, theirs, AttemptDeadline(0.2) as deadline:
        deadline.watch(ours)
        started = time.monotonic()
        # When a read waits on it, Then the read ends at the deadline, with no data
        assert ours.recv(16) == b""
        assert time.monotonic() - started < 5
        # And the attempt knows it did not end in time
        assert not deadline.met()


def test_an_attempt_that_ends_in_time_meets_its_deadline() -> None:
    # Given a deadline far off, When the attempt ends now, Then it met it
    with AttemptDeadline(30) as deadline:
        assert deadline.met()


class HangingSender:
    """Delivers at once, except to the URLs it hangs on (until released): an attempt that does
    not end (a name resolution that never returns, say)."""

    attempt_seconds = 0.2

    def __init__(self, hang_on: str) -> None:
        self.hang_on = hang_on
        self.release = threading.Event()
        self.delivered: list[str] = []

    def signing_secrets(self, owner: str) -> list[str]:
        return [SECRET]

    def deliver(self, message: WebhookMessage, *, secrets: Any = None) -> int:
        if message.url == self.hang_on:
            self.release.wait(30)
        self.delivered.append(message.webhook_id)
        return 204


def test_a_batch_does_not_wait_for_an_attempt_past_its_deadline() -> None:
    # Given a batch of three webhooks, one of which never ends its attempt
    raw = load_event("deliver_webhook")["Records"][0]
    records = []
    for index, url in enumerate([URL, "https://stuck.example.com/", URL]):
        body = WebhookMessage(
            webhook_id=f"msg_{index}", url=url, body="{}", owner=OWNER
        ).model_dump_json()
        records.append({**raw, "messageId": f"m{index}", "body": body})
    sender: Any = HangingSender("https://stuck.example.com/")
    # When all are attempted
    started = time.monotonic()
    outcomes = attempt_all(records, sender)
    sender.release.set()
    # Then the batch waited about one attempt's time, not for the stuck one
    assert time.monotonic() - started < 5
    # And the others were delivered, the stuck one is a failed attempt
    assert outcomes["m0"] is None
    assert outcomes["m2"] is None
    assert isinstance(outcomes["m1"], WebhookDeliveryError)
    assert not isinstance(outcomes["m1"], WebhookNotAttempted)

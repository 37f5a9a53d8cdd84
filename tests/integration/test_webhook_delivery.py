"""The deliver_webhook function's real handler over real HTTP, against moto's SQS and Secrets
Manager: a receiver on 127.0.0.1 fails the first attempt and takes the second; the message is
hidden for the schedule's first delay in between, and both attempts carry the same webhook-id
and verify with the independent `standardwebhooks` package over the raw body bytes.
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws
from standardwebhooks.webhooks import Webhook

from imagegateway.adapters.aws_clients import sqs_client
from imagegateway.adapters.webhook_secrets import owner_secret
from imagegateway.adapters.webhooks import (
    MAX_ATTEMPTS,
    RETRY_SCHEDULE_SECONDS,
    WebhookDeliveryError,
    WebhookMessage,
    WebhookQueue,
    WebhookSender,
    webhook_message,
)
from imagegateway.domain.base import JobStatus
from imagegateway.domain.events import Completion, CompletionDetail
from imagegateway.platform.settings import Settings, get_settings
from local.aws.lambda_runtime import LambdaContext, load_handler
from tests.support.caches import clear_all
from tests.support.webhook_receivers import Mode, SlowReceiver

pytestmark = pytest.mark.network

FUNCTION = Path(__file__).resolve().parents[2] / "functions" / "deliver_webhook"
SECRET_NAME = "webhook-signing-secret"
OWNER = "iam:AIDAEXAMPLEOWNER0001"
JOB_ID = "3f2b8c1e-9d4a-4e7b-8a61-0c5d2e7f9a10"


# --- the receiver ---------------------------------------------------------------------------


@dataclass
class Received:
    headers: dict[str, str]  # names lower-cased
    body: bytes  # the raw bytes, as the signature covers them


class Receiver(ThreadingHTTPServer):
    """Answers each POST with the next of `statuses` (then the last one), keeping what came."""

    daemon_threads = True

    def __init__(self, statuses: list[int]) -> None:
        super().__init__(("127.0.0.1", 0), ReceiverHandler)
        self.statuses = statuses
        self.received: list[Received] = []
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_port}/hooks/imagepipeline"

    def answer_to(self, request: Received) -> int:
        with self.lock:
            self.received.append(request)
            return self.statuses[min(len(self.received), len(self.statuses)) - 1]


class ReceiverHandler(BaseHTTPRequestHandler):
    server: Receiver
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        headers = {name.lower(): value for name, value in self.headers.items()}
        status = self.server.answer_to(Received(headers, body))
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver([500, 200])
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


# --- the queue, the secret and the function ---------------------------------------------------


@dataclass
class Queue:
    url: str
    arn: str
    secret: str
    visibility_changes: list[dict[str, Any]] = field(default_factory=list)


def environment(queue_url: str, *, insecure: bool) -> dict[str, str]:
    return {
        "JOBS_TABLE_NAME": "jobs-table",
        "IMAGES_BUCKET_NAME": "images-bucket",
        "WEBHOOK_SIGNING_SECRET_NAME": SECRET_NAME,
        "WEBHOOK_QUEUE_URL": queue_url,
        "ALLOW_INSECURE_DOWNLOADS": "true" if insecure else "false",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }


def moto_queue(monkeypatch: pytest.MonkeyPatch, *, insecure: bool) -> Queue:
    sqs = boto3.client("sqs", region_name="us-east-1")
    # No visibility timeout of its own: a message stays hidden only if the function hides it.
    url = sqs.create_queue(QueueName="webhooks", Attributes={"VisibilityTimeout": "0"})["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]
    secret = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
    boto3.client("secretsmanager", region_name="us-east-1").create_secret(
        Name=SECRET_NAME, SecretString=secret
    )
    for name, value in environment(url, insecure=insecure).items():
        monkeypatch.setenv(name, value)
    clear_all()
    queue = Queue(url, arn["QueueArn"], secret)
    # The function's own client, watched: every visibility change it asks for is kept.
    sqs_client().meta.events.register(
        "provide-client-params.sqs.ChangeMessageVisibility",
        lambda params, **_: queue.visibility_changes.append(dict(params)),
    )
    return queue


@pytest.fixture
def queue(monkeypatch: pytest.MonkeyPatch) -> Iterator[Queue]:
    with mock_aws():
        yield moto_queue(monkeypatch, insecure=True)


@pytest.fixture
def deployed_queue(monkeypatch: pytest.MonkeyPatch) -> Iterator[Queue]:
    with mock_aws():
        yield moto_queue(monkeypatch, insecure=False)


def invoke(event: dict[str, Any]) -> Any:
    return load_handler(FUNCTION)(event, LambdaContext(function_name="deliver_webhook"))


def completed_job(job_id: str = JOB_ID) -> Completion:
    return Completion.of(
        CompletionDetail(
            job_id=job_id, status=JobStatus.SUCCESS, reference="order-42", images=[], timings=None
        )
    )


def receive(queue: Queue) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = (
        boto3.client("sqs", region_name="us-east-1")
        .receive_message(QueueUrl=queue.url, AttributeNames=["All"], MaxNumberOfMessages=10)
        .get("Messages", [])
    )
    return messages


def sqs_event(queue: Queue, message: dict[str, Any], **attributes: str) -> dict[str, Any]:
    """The event Lambda's SQS event source builds from a received message."""
    return {
        "Records": [
            {
                "messageId": message["MessageId"],
                "receiptHandle": message["ReceiptHandle"],
                "body": message["Body"],
                "attributes": {**message["Attributes"], **attributes},
                "messageAttributes": {},
                "md5OfBody": message["MD5OfBody"],
                "eventSource": "aws:sqs",
                "eventSourceARN": queue.arn,
                "awsRegion": "us-east-1",
            }
        ]
    }


def queued(message: WebhookMessage) -> None:
    WebhookQueue(get_settings()).enqueue(message)


# --- the tests ------------------------------------------------------------------------------


def test_a_failed_attempt_comes_back_after_its_delay_and_the_next_one_is_delivered(
    queue: Queue, receiver: Receiver
) -> None:
    # Given a job's webhook on the queue, to a receiver that answers 500 then 200
    queued(webhook_message(receiver.url, completed_job(), now=datetime.now(UTC), owner=OWNER))
    [first] = receive(queue)
    assert first["Attributes"]["ApproximateReceiveCount"] == "1"

    # When the function gets it the first time
    answer = invoke(sqs_event(queue, first))

    # Then the attempt failed: the record is a batch item failure, hidden for the first delay
    assert answer == {"batchItemFailures": [{"itemIdentifier": first["MessageId"]}]}
    assert [change["VisibilityTimeout"] for change in queue.visibility_changes] == [
        RETRY_SCHEDULE_SECONDS[0]
    ]
    assert queue.visibility_changes[0]["QueueUrl"] == queue.url
    assert receive(queue) == [], "the message should be hidden until its next attempt"

    # When the delay is over (cut short here) and the function gets it the second time
    boto3.client("sqs", region_name="us-east-1").change_message_visibility(
        QueueUrl=queue.url, ReceiptHandle=first["ReceiptHandle"], VisibilityTimeout=0
    )
    [second] = receive(queue)
    assert second["Attributes"]["ApproximateReceiveCount"] == "2"
    answer = invoke(sqs_event(queue, second))

    # Then it was delivered, with no further delay asked for
    assert answer == {"batchItemFailures": []}
    assert len(queue.visibility_changes) == 1
    # And both attempts carried the same id and body, each signed for its own attempt
    assert len(receiver.received) == 2
    ids = {request.headers["webhook-id"] for request in receiver.received}
    assert ids == {f"msg_{JOB_ID}"}
    assert receiver.received[0].body == receiver.received[1].body
    for request in receiver.received:
        payload = Webhook(owner_secret(queue.secret, OWNER)).verify(request.body, request.headers)
        assert payload["type"] == "image.succeeded"
        assert payload["data"]["job_id"] == JOB_ID
        assert request.headers["content-type"] == "application/json"


def test_the_last_failed_attempt_is_not_delayed_again(queue: Queue, receiver: Receiver) -> None:
    # Given a receiver that keeps failing, and a message on its last attempt
    receiver.statuses = [503]
    queued(webhook_message(receiver.url, completed_job(), now=datetime.now(UTC), owner=OWNER))
    [message] = receive(queue)
    # When the function gets it
    answer = invoke(sqs_event(queue, message, ApproximateReceiveCount=str(MAX_ATTEMPTS)))
    # Then it fails without a new delay: the queue's redrive policy dead-letters it
    assert answer == {"batchItemFailures": [{"itemIdentifier": message["MessageId"]}]}
    assert queue.visibility_changes == []
    assert len(receiver.received) == 1


def test_deployed_a_loopback_webhook_is_refused_and_dropped(
    deployed_queue: Queue, receiver: Receiver
) -> None:
    # Given the deployed rules, and a webhook to a loopback http address
    queued(webhook_message(receiver.url, completed_job(), now=datetime.now(UTC), owner=OWNER))
    [message] = receive(deployed_queue)
    # When the function gets it
    answer = invoke(sqs_event(deployed_queue, message))
    # Then nothing was sent, and the record is not retried
    assert answer == {"batchItemFailures": []}
    assert receiver.received == []
    assert deployed_queue.visibility_changes == []


def test_a_malformed_message_is_dropped(queue: Queue, receiver: Receiver) -> None:
    # Given a record whose body is not a webhook message
    boto3.client("sqs", region_name="us-east-1").send_message(
        QueueUrl=queue.url, MessageBody=json.dumps({"url": receiver.url})
    )
    [message] = receive(queue)
    # When the function gets it, Then it is not retried, and nothing was sent
    assert invoke(sqs_event(queue, message)) == {"batchItemFailures": []}
    assert receiver.received == []


# --- receivers that hold the connection ------------------------------------------------------

# Short in tests; the assertions allow five times as much, so a busy machine does not fail them.
ATTEMPT_SECONDS = 3.0
WELL_WITHIN = 15.0


@pytest.fixture
def slow_receiver(request: pytest.FixtureRequest) -> Iterator[SlowReceiver]:
    mode: Mode = getattr(request, "param", "dribble")
    receiver = SlowReceiver(mode=mode)
    yield receiver
    receiver.close()


def left_within(receiver: SlowReceiver, seconds: float) -> list[float]:
    """How long the sender held each connection, waiting up to `seconds` for it to leave."""
    ends = time.monotonic() + seconds
    while any(visit.left_at is None for visit in receiver.visits) and time.monotonic() < ends:
        time.sleep(0.05)
    return [visit.held_seconds or float("inf") for visit in receiver.visits]


@pytest.mark.parametrize("slow_receiver", ["dribble", "silent"], indirect=True)
def test_an_attempt_at_a_receiver_that_never_finishes_its_answer_ends_at_its_deadline(
    slow_receiver: SlowReceiver,
) -> None:
    # Given a sender whose attempts last 3 s, and a receiver that dribbles its status line and
    # headers a byte at a time (each byte well within any read timeout), or never answers
    settings = Settings(
        jobs_table_name="jobs",
        images_bucket_name="images",
        allow_insecure_downloads=True,
        webhook_timeout_seconds=ATTEMPT_SECONDS,
    )
    sender = WebhookSender(settings, secrets=lambda owner: ["whsec_" + "A" * 32])
    message = webhook_message(
        slow_receiver.url, completed_job(), now=datetime.now(UTC), owner=OWNER
    )
    # When one attempt is made
    started = time.monotonic()
    with pytest.raises(WebhookDeliveryError):
        sender.deliver(message)
    elapsed = time.monotonic() - started
    sender.close()
    # Then it failed at about its deadline, not when the receiver gave up (30 s)
    assert ATTEMPT_SECONDS - 0.5 <= elapsed < WELL_WITHIN
    # And the receiver saw the connection go then, the request having been sent whole
    [held] = left_within(slow_receiver, WELL_WITHIN)
    assert held < WELL_WITHIN
    assert slow_receiver.visits[0].request_head.startswith(b"POST /hooks/slow ")


@pytest.mark.parametrize("slow_receiver", ["endless-body"], indirect=True)
def test_an_answer_with_an_endless_body_is_judged_by_its_status_and_not_read(
    slow_receiver: SlowReceiver,
) -> None:
    # Given a receiver that answers 200 at once, then sends a body that never ends
    settings = Settings(
        jobs_table_name="jobs",
        images_bucket_name="images",
        allow_insecure_downloads=True,
        webhook_timeout_seconds=ATTEMPT_SECONDS,
    )
    sender = WebhookSender(settings, secrets=lambda owner: ["whsec_" + "A" * 32])
    message = webhook_message(
        slow_receiver.url, completed_job(), now=datetime.now(UTC), owner=OWNER
    )
    # When one attempt is made
    started = time.monotonic()
    status = sender.deliver(message)
    sender.close()
    # Then it is delivered on the status alone, without waiting for (or reading) the body
    assert status == 200
    assert time.monotonic() - started < WELL_WITHIN
    [held] = left_within(slow_receiver, WELL_WITHIN)
    assert held < WELL_WITHIN


def test_a_dribbling_receiver_fails_only_its_own_record_of_a_batch(
    queue: Queue, receiver: Receiver, slow_receiver: SlowReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given attempts of 3 s, and a batch of five webhooks of five jobs: four to a receiver that
    # answers 200 at once, one (in the middle) to a receiver that dribbles its answer
    monkeypatch.setenv("WEBHOOK_TIMEOUT_SECONDS", str(ATTEMPT_SECONDS))
    get_settings.cache_clear()
    receiver.statuses = [200]
    good_ids = [str(uuid.uuid4()) for _ in range(4)]
    slow_id = str(uuid.uuid4())
    now = datetime.now(UTC)
    for job_id in [*good_ids[:2], slow_id, *good_ids[2:]]:
        url = slow_receiver.url if job_id == slow_id else receiver.url
        queued(webhook_message(url, completed_job(job_id), now=now, owner=OWNER))
    messages = receive(queue)
    assert len(messages) == 5
    event = {"Records": [sqs_event(queue, m)["Records"][0] for m in messages]}
    [slow_message] = [m for m in messages if slow_id in m["Body"]]

    # When the function gets the batch
    started = time.monotonic()
    answer = invoke(event)
    elapsed = time.monotonic() - started

    # Then only the dribbler's record failed, and it comes back after the schedule's first delay
    assert answer == {"batchItemFailures": [{"itemIdentifier": slow_message["MessageId"]}]}
    assert [change["VisibilityTimeout"] for change in queue.visibility_changes] == [
        RETRY_SCHEDULE_SECONDS[0]
    ]
    # And every other job's webhook was delivered exactly once
    ids = sorted(request.headers["webhook-id"] for request in receiver.received)
    assert ids == sorted(f"msg_{job_id}" for job_id in good_ids)
    # And the whole batch took about one attempt's time, far within the function's budget
    assert elapsed < WELL_WITHIN
    [held] = left_within(slow_receiver, WELL_WITHIN)
    assert held < WELL_WITHIN

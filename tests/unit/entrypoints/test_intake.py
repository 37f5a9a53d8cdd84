"""The request queue's consumer, the entry point: how a message is read (its envelope, its
request, its dedupe key) or refused naming its fields. No AWS, no sockets."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from imagegateway.domain.base import JobKind
from imagegateway.domain.errors import (
    InvalidRequestError,
)
from imagegateway.entrypoints.request_queue import owner_of, read_message, read_request

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
TOKEN = "run-token-0123456789abcdef"
REQUEST = {"model_id": "sd1.5", "prompt": "a fox", "samples": 3}


# ---------------------------------------------------------------- reading a message


def test_an_envelope_gives_its_kind_the_upstream_body_and_its_own_key() -> None:
    envelope = {"kind": "image2image", "request": {**REQUEST, "init_image": "https://x.test/a.png"}}
    read = read_request(json.dumps({**envelope, "idempotency_key": "k-1"}), "m-1")
    assert (read.envelope.kind, read.key) == (JobKind.IMAGE2IMAGE, "k-1")
    assert read.body == envelope["request"]


def test_without_a_key_the_message_id_dedupes_a_redelivery() -> None:
    assert read_request(json.dumps({"request": REQUEST}), "m-7").key == "message:m-7"


def test_an_event_from_the_bus_is_read_from_its_detail_and_deduped_by_its_id() -> None:
    event = {
        "id": "evt-9",
        "detail-type": "Image Generation Requested",
        "detail": {"request": REQUEST},
    }
    read = read_request(json.dumps(event), "m-8")
    assert (read.envelope.kind, read.key) == (JobKind.TEXT2IMAGE, "event:evt-9")


def test_a_requests_own_webhook_is_the_jobs_webhook_and_never_sent_upstream() -> None:
    # Given a queued controlnet request whose body carries the family's `webhook`
    hook = "https://hooks.example.com/images"
    request = {**REQUEST, "controlnets": ["canny"], "init_images": ["https://x.test/e.png"]}
    envelope = {"kind": "controlnet", "request": {**request, "webhook": hook}, "reference": "r"}
    # When it is read
    read = read_request(json.dumps(envelope), "m-2")
    # Then the job will tell that webhook, and the upstream's body does not carry it
    assert (read.callbacks.webhook_url, read.callbacks.reference) == (hook, "r")
    assert read.body == request
    # And the same URL as the envelope's webhook_url is one webhook
    same = read_request(json.dumps({**envelope, "webhook_url": hook}), "m-3")
    assert same.callbacks.webhook_url == hook


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        (
            json.dumps(
                {
                    "request": {**REQUEST, "webhook": "https://a.example.com/x"},
                    "webhook_url": "https://b.example.com/y",
                }
            ),
            ["request.webhook"],
        ),
        ("{not json", ["body"]),
        (json.dumps(["a list"]), ["body"]),
        (json.dumps({"reference": "r"}), ["request"]),
        (json.dumps({"request": REQUEST, "colour": "red"}), ["colour"]),
        (json.dumps({"kind": "outpainting", "request": REQUEST}), ["kind"]),
        (json.dumps({"request": {**REQUEST, "width": 513}}), ["request.width"]),
        (
            json.dumps({"kind": "inpainting", "request": REQUEST}),
            ["request.init_image", "request.mask_image"],
        ),
        (json.dumps({"request": REQUEST, "webhook_url": "http://10.0.0.1/x"}), ["webhook_url"]),
        (json.dumps({"request": REQUEST, "reference": "r" * 257}), ["reference"]),
    ],
)
def test_a_message_that_can_never_run_names_its_fields(body: str, fields: list[str]) -> None:
    with pytest.raises(InvalidRequestError) as refused:
        read_request(body, "m-1")
    assert [field for field, _ in refused.value.details] == fields
    assert refused.value.code == "INVALID_REQUEST"


# ---------------------------------------------------------------- who owns a message

BUS_QUEUE = "arn:aws:sqs:us-east-1:123456789012:gw-BusRequestQueue"
REQUEST_QUEUE = "arn:aws:sqs:us-east-1:123456789012:gw-RequestQueue"


def sqs_record(body: Any, *, queue: str, sender: str | None) -> SQSRecord:
    attributes = {"ApproximateReceiveCount": "1"}
    if sender is not None:
        attributes["SenderId"] = sender
    return SQSRecord(
        {
            "messageId": "m-1",
            "body": body if isinstance(body, str) else json.dumps(body),
            "attributes": attributes,
            "eventSourceARN": queue,
        }
    )


def test_a_queued_message_belongs_to_its_sender_whatever_its_envelope_says() -> None:
    # Given a message from role AROA... (session "task-7") that looks like another account's event
    forged = {"detail-type": "Image Generation Requested", "account": "999999999999", "detail": {}}
    record = sqs_record(forged, queue=REQUEST_QUEUE, sender="AROA3XFRBF535EXAMPLE1:task-7")
    # Then it is the sending role's, by its unique id
    assert owner_of(record, BUS_QUEUE, forged) == "iam:AROA3XFRBF535EXAMPLE1"


def test_a_bus_delivered_request_belongs_to_the_account_of_the_event() -> None:
    event = {"detail-type": "Image Generation Requested", "account": "210987654321", "detail": {}}
    record = sqs_record(event, queue=BUS_QUEUE, sender="AIDAEVENTBRIDGESERVICE")
    assert owner_of(record, BUS_QUEUE, event) == "account:210987654321"


def readable(body: str) -> Any:
    """The message as the intake reads it; None when it cannot be read."""
    try:
        return read_message(body)
    except InvalidRequestError:
        return None


@pytest.mark.parametrize(
    ("body", "queue", "sender"),
    [
        ("{}", REQUEST_QUEUE, None),
        ("{}", REQUEST_QUEUE, "not-a-principal"),
        # an unreadable bus message: nothing read to name an account
        ("not json", BUS_QUEUE, None),
        (json.dumps({"account": 12}), BUS_QUEUE, None),
        ("[" * 5000, BUS_QUEUE, None),
    ],
)
def test_a_message_aws_names_no_principal_for_is_refused_naming_the_sender(
    body: str, queue: str, sender: str | None
) -> None:
    with pytest.raises(InvalidRequestError) as refused:
        owner_of(sqs_record(body, queue=queue, sender=sender), BUS_QUEUE, readable(body))
    assert [field for field, _ in refused.value.details] == ["sender"]

"""The request queue's consumer, the entry point: how a message is read (its envelope, its
request, its dedupe key) or refused naming its fields. No AWS, no sockets."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from imagegateway.domain.base import JobKind
from imagegateway.domain.errors import (
    InvalidRequestError,
)
from imagegateway.entrypoints.request_queue import read_request

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


@pytest.mark.parametrize(
    ("body", "fields"),
    [
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

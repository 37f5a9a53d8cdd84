"""No input is a 5xx or a stuck message (issue #20, finding 6/7), over the local stack as a
client or a pipeline would send it: hostile JSON over HTTP is a 400 naming the field, an edited
list cursor a 400, and a queued message that cannot be read ends at once as an `Image
Generation Failed` event (INVALID_REQUEST, no reference) while the queue and its dead-letter
queue stay empty."""

from __future__ import annotations

import base64
import json
import secrets
import time
from typing import Any

import pytest

from tests.e2e.conftest import Gateway
from tests.support.event_schema import assert_valid_completion

pytestmark = pytest.mark.network

REQUEST = '{"model_id": "sd1.5", "prompt": "a fox"'


def caller() -> str:
    return f"user-{secrets.token_hex(4)}"


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (
            REQUEST + ', "lora_models": ["m"], "lora_weights": [' + "9" * 400 + "]}",
            "lora_weights[0]",
        ),
        (REQUEST + ', "seed": ' + "9" * 5000 + "}", "seed"),
        (REQUEST + ', "guidance_scale": 1e400}', "guidance_scale"),
        (REQUEST + ', "strength": NaN}', "strength"),
        (REQUEST + ', "embeddings": ' + "[" * 5000 + "]" * 5000 + "}", "body"),
        ('{"model_id": "sd1.5", "prompt": "\\ud800"}', "prompt"),
        (REQUEST + ', "prompt": "a wolf"}', "prompt"),
    ],
)
def test_hostile_json_over_http_is_a_400_naming_the_field(
    gateway: Gateway, raw: str, field: str
) -> None:
    # Given a body of about 10 KB at most that json.loads alone would choke on or misread
    assert len(raw) < 32 * 1024
    # When it is POSTed as a client would
    response = gateway.submit(raw=raw.encode(), headers={"Content-Type": "application/json"})
    # Then it is a 400 in the contract's shape, naming the field
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["status"] == "FAILURE"
    assert "\n" not in body["error"]
    assert field in [detail["field"] for detail in body["details"]], body


def test_an_edited_cursor_is_a_400_and_a_real_one_pages(gateway: Gateway) -> None:
    # Given a caller with three jobs, and the cursor of its first page of one
    who = caller()
    for _ in range(3):
        assert gateway.submit({"model_id": "fake-instant", "prompt": "p"}, caller=who).ok

    def page(cursor: str | None = None) -> Any:
        params = {"limit": "1", **({"cursor": cursor} if cursor else {})}
        return gateway.session.get(
            f"{gateway.url}/v1/jobs", params=params, headers={"X-Local-Caller": who}, timeout=30
        )

    cursor = page().json()["next_cursor"]
    assert page(cursor).status_code == 200
    data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    # When its key is edited (a fractional position, a 40-digit id), then each is a 400
    for edit in ({"created_at": 1.5}, {"job_id": 10**40}, {"owner": "someone-else"}):
        edited = {**data, "key": {**data["key"], **edit}}
        text = base64.urlsafe_b64encode(json.dumps(edited).encode()).decode().rstrip("=")
        response = page(text)
        assert response.status_code == 400, response.text
        assert [d["field"] for d in response.json()["details"]] == ["cursor"]


def test_a_caller_header_that_is_not_a_name_is_a_4xx(gateway: Gateway) -> None:
    response = gateway.session.get(
        f"{gateway.url}/v1/jobs", headers={"X-Local-Caller": "caf\xe9\x00"}, timeout=30
    )
    assert 400 <= response.status_code < 500, response.text


UNREADABLE = {
    "nested 5,000 deep": (
        '{"request": ' + REQUEST + ', "embeddings": ' + "[" * 5000 + "]" * 5000 + "}}",
        {"field": "body", "message": "nested deeper than 32 levels"},
    ),
    "a 400-digit seed": (
        '{"request": ' + REQUEST + ', "seed": ' + "8" * 400 + "}}",
        {
            "field": "request.seed",
            "message": "the number 888888888888...(400 characters) is larger than any field "
            "can hold",
        },
    ),
}


@pytest.mark.parametrize("name", list(UNREADABLE))
def test_an_unreadable_message_ends_as_a_failed_event_and_leaves_the_queue(
    gateway: Gateway, name: str
) -> None:
    # Given a message on the request queue that no JSON reader should take as is
    body, detail = UNREADABLE[name]
    outputs, sqs = gateway.outputs(), gateway.aws("sqs")
    sqs.send_message(QueueUrl=outputs["RequestQueueUrl"], MessageBody=body)
    # When the intake has seen it, then one Failed event says why, with no reference or job
    event = gateway.completion(lambda e: e["detail"].get("details") == [detail])
    assert_valid_completion(event)
    assert event["detail-type"] == "Image Generation Failed"
    assert event["detail"]["error_code"] == "INVALID_REQUEST"
    assert "reference" not in event["detail"]
    assert "job_id" not in event["detail"]
    # And the message is gone at once: not waiting to be retried, not in the dead-letter queue
    time.sleep(1)
    for queue in ("RequestQueueUrl", "RequestDeadLetterQueueUrl"):
        counts = sqs.get_queue_attributes(
            QueueUrl=outputs[queue],
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        assert set(counts.values()) == {"0"}, (queue, counts)

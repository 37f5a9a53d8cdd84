"""A queued message the gateway cannot read (issue #20, finding 6/7) ends at once: one
`Image Generation Failed` event with INVALID_REQUEST (no reference: nothing in it was read),
and the message leaves the queue (no batch item failure, so no retry and no dead-letter
queue). The intake function's real handler on moto, its events watched through a queue."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from imagegateway.domain.events import DetailType
from local.aws.resources import LocalStack
from local.fake_upstream import FakeUpstream
from tests.support.stack import invoke, table_rows, watch_completions

REGION = "us-east-1"
REQUEST = '{"model_id": "sd1.5", "prompt": "a fox"'


def deep(depth: int) -> str:
    """A ~10 KB message whose request nests `depth` arrays."""
    return '{"request": ' + REQUEST + ', "embeddings": ' + "[" * depth + "]" * depth + "}}"


UNREADABLE = {
    "nested 5,000 deep": deep(5000),
    "nested 40 deep": deep(40),
    "only nesting": "[" * 20_000 + "]" * 20_000,
    "400-digit lora weight": '{"request": '
    + REQUEST
    + ', "lora_models": ["m"], "lora_weights": ['
    + "9" * 400
    + "]}}",
    "5,000-digit seed": '{"request": ' + REQUEST + ', "seed": ' + "9" * 5000 + "}}",
    "1e400 guidance": '{"request": ' + REQUEST + ', "guidance_scale": 1e400}}',
    "NaN strength": '{"request": ' + REQUEST + ', "strength": NaN}}',
    "surrogate prompt": '{"request": {"model_id": "sd1.5", "prompt": "\\ud800"}}',
    "surrogate reference": '{"request": ' + REQUEST + '}, "reference": "r-\\udfff"}',
    "duplicate request": '{"request": ' + REQUEST + '}, "request": ' + REQUEST + "}}",
    "not JSON": "<order>42</order>",
    "bus event nested deep": '{"detail-type": "Image Generation Requested", "id": "e", "detail": '
    + deep(3000)
    + "}",
}


@pytest.fixture
def completions(stack: LocalStack) -> Callable[[], list[dict[str, Any]]]:
    """Every completion event put on the gateway's bus so far (a queue subscribed to them)."""
    return watch_completions(stack, "watched-completions")


def sqs_event(*bodies: str) -> dict[str, Any]:
    """The intake's SQS event for messages with these bodies, first delivery."""
    return {
        "Records": [
            {
                "messageId": str(uuid.uuid4()),
                "receiptHandle": f"handle-{index}",
                "body": body,
                "attributes": {
                    "ApproximateReceiveCount": "1",
                    "SentTimestamp": "1795622400000",
                    "SenderId": "AIDAEXAMPLESENDER0001",
                    "ApproximateFirstReceiveTimestamp": "1795622400000",
                },
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": f"arn:aws:sqs:{REGION}:123456789012:requests",
                "awsRegion": REGION,
            }
            for index, body in enumerate(bodies)
        ]
    }


@pytest.mark.parametrize("name", list(UNREADABLE))
def test_an_unreadable_message_ends_at_once_as_a_failed_event(
    stack: LocalStack,
    upstream: FakeUpstream,
    completions: Callable[[], list[dict[str, Any]]],
    name: str,
) -> None:
    # Given a message the gateway cannot read
    body = UNREADABLE[name]
    assert len(body.encode()) < 256 * 1024
    # When the intake takes it
    answer = invoke(stack, "intake", sqs_event(body))
    # Then it is not a batch item failure (SQS deletes it: no retry, no dead-letter queue)
    assert answer == {"batchItemFailures": []}
    # And one Failed event says so, INVALID_REQUEST, with no reference and no job
    [event] = completions()
    assert event["detail-type"] == DetailType.FAILED
    detail = event["detail"]
    assert detail["error_code"] == "INVALID_REQUEST"
    assert detail["details"]
    assert "reference" not in detail
    assert "job_id" not in detail
    assert table_rows(stack) == []
    assert upstream.stats()["submits"] == 0


def test_a_readable_invalid_message_still_tells_its_reference(
    stack: LocalStack, upstream: FakeUpstream, completions: Callable[[], list[dict[str, Any]]]
) -> None:
    # Given a well-formed message whose request is invalid (a huge but double-sized seed)
    body = json.dumps(
        {"request": {"model_id": "m", "prompt": "p", "seed": 10**40}, "reference": "r-1"}
    )
    # When the intake takes it, then its Failed event carries its reference and names the field
    assert invoke(stack, "intake", sqs_event(body)) == {"batchItemFailures": []}
    [event] = completions()
    assert event["detail"]["reference"] == "r-1"
    assert [d["field"] for d in event["detail"]["details"]] == ["request.seed"]


def test_a_batch_mixing_unreadable_and_valid_messages_runs_the_valid_one(
    stack: LocalStack, upstream: FakeUpstream, completions: Callable[[], list[dict[str, Any]]]
) -> None:
    good = json.dumps({"request": {"model_id": "sd1.5", "prompt": "a fox"}, "reference": "ok"})
    answer = invoke(
        stack, "intake", sqs_event(deep(5000), good, UNREADABLE["400-digit lora weight"])
    )
    assert answer == {"batchItemFailures": []}
    failed = [e for e in completions() if e["detail-type"] == DetailType.FAILED]
    assert len(failed) == 2
    assert upstream.stats()["submits"] == 1

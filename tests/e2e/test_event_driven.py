"""Pipelines and other AWS services as callers, over the local stack: an envelope on the request
queue, an event on the bus, a Step Functions execution waiting on a task token, a webhook; every
job's completion event on the bus, held to the published schema. Only the contract's names are
used (out/stack-outputs.json, the envelope, the events, the fake upstream's hooks)."""

from __future__ import annotations

import hashlib
import json
import secrets
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook

from tests.e2e.conftest import Gateway
from tests.support.event_schema import assert_valid_completion

pytestmark = pytest.mark.network


def unique(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


def send_envelope(gateway: Gateway, envelope: Any, *, raw: str | None = None) -> None:
    body = raw if raw is not None else json.dumps(envelope)
    gateway.aws("sqs").send_message(QueueUrl=gateway.outputs()["RequestQueueUrl"], MessageBody=body)


def by_reference(reference: str) -> Any:
    return lambda event: event["detail"].get("reference") == reference


def test_an_sqs_envelope_ends_with_a_succeeded_event_carrying_its_reference(
    gateway: Gateway,
) -> None:
    # Given an envelope on the request queue
    reference = unique("order")
    send_envelope(
        gateway,
        {"request": {"model_id": "sd1.5", "prompt": "a fox", "samples": 2}, "reference": reference},
    )
    # When its completion event arrives on the bus
    event = gateway.completion(by_reference(reference))
    # Then it succeeded, valid against the published schema, with both images readable in S3
    assert_valid_completion(event)
    detail = event["detail"]
    assert (detail["status"], detail["kind"]) == ("SUCCESS", "text2image")
    s3 = gateway.aws("s3")
    assert len(detail["images"]) == 2
    for image in detail["images"]:
        data = s3.get_object(Bucket=image["bucket"], Key=image["key"])["Body"].read()
        assert hashlib.sha256(data).hexdigest() == image["sha256"]
        assert data.startswith(b"\x89PNG")


def test_an_eventbridge_request_ends_with_a_succeeded_event(gateway: Gateway) -> None:
    # Given an Image Generation Requested event on the gateway's bus, from any source
    reference = unique("evt")
    envelope = {
        "kind": "inpainting",
        "request": {
            "model_id": "sd1.5",
            "prompt": "a red door",
            "init_image": "https://example.com/in.png",
            "mask_image": "https://example.com/mask.png",
        },
        "reference": reference,
    }
    answer = gateway.aws("events").put_events(
        Entries=[
            {
                "EventBusName": gateway.outputs()["EventBusName"],
                "Source": "my.pipeline",
                "DetailType": "Image Generation Requested",
                "Detail": json.dumps(envelope),
            }
        ]
    )
    assert answer["FailedEntryCount"] == 0
    # Then its job runs through the queue and ends with a Succeeded event of its kind
    event = gateway.completion(by_reference(reference))
    assert_valid_completion(event)
    assert (event["detail"]["status"], event["detail"]["kind"]) == ("SUCCESS", "inpainting")


def test_an_invalid_envelope_gives_a_failed_event_naming_the_field_and_no_upstream_call(
    gateway: Gateway,
) -> None:
    # Given an envelope whose request the upstream would refuse (a width not a multiple of 8)
    reference, model = unique("bad"), unique("model-never-sent")
    send_envelope(
        gateway,
        {"request": {"model_id": model, "prompt": "p", "width": 513}, "reference": reference},
    )
    # When its completion arrives
    event = gateway.completion(by_reference(reference))
    # Then it is a Failed event, INVALID_REQUEST, naming the field; nothing went upstream
    assert_valid_completion(event)
    detail = event["detail"]
    assert detail["error_code"] == "INVALID_REQUEST"
    assert [d["field"] for d in detail["details"]] == ["request.width"]
    assert "job_id" not in detail
    assert model not in gateway.upstream_stats()["submits_by_model"]


def test_a_message_that_is_not_json_gives_a_failed_event_and_leaves_the_queue(
    gateway: Gateway,
) -> None:
    # Given a message that is not JSON at all
    marker = unique("not json")
    send_envelope(gateway, None, raw=marker)
    # When the intake has seen it
    event = gateway.completion(
        lambda e: e["detail"].get("details") == [{"field": "body", "message": "not valid JSON"}]
    )
    # Then a Failed event says so, and the message is gone (not retried, not dead-lettered)
    assert_valid_completion(event)
    assert event["detail"]["error_code"] == "INVALID_REQUEST"
    sqs, outputs = gateway.aws("sqs"), gateway.outputs()
    for queue in ("RequestQueueUrl", "RequestDeadLetterQueueUrl"):
        counts = sqs.get_queue_attributes(
            QueueUrl=outputs[queue],
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        assert set(counts.values()) == {"0"}, queue


def test_two_messages_with_one_idempotency_key_make_one_upstream_post(gateway: Gateway) -> None:
    # Given the same request sent twice with one idempotency key
    model, key = unique("model-once"), unique("key")
    envelope = {"request": {"model_id": model, "prompt": "p"}, "idempotency_key": key}
    send_envelope(gateway, {**envelope, "reference": "first"})
    send_envelope(gateway, {**envelope, "reference": "second"})
    # When the job has ended
    event = gateway.completion(
        lambda e: (
            e["detail"].get("reference") in ("first", "second") and _job_model(gateway, e) == model
        )
    )
    # Then the upstream got one POST, and one job exists for the key
    assert event["detail"]["status"] == "SUCCESS"
    time.sleep(2)  # the second delivery, if it made a job, would have sent it by now
    assert gateway.upstream_stats()["submits_by_model"][model] == 1


def _job_model(gateway: Gateway, event: dict[str, Any]) -> str | None:
    table = gateway.outputs()["JobsTableName"]
    item = (
        gateway.aws("dynamodb")
        .get_item(TableName=table, Key={"job_id": {"S": event["detail"]["job_id"]}})
        .get("Item")
    )
    if item is None:
        return None
    return str(json.loads(item["request"]["S"]).get("model_id"))


def test_an_http_job_emits_its_completion_event(gateway: Gateway) -> None:
    # Given a job submitted over HTTP
    response = gateway.submit({"model_id": "fake-instant", "prompt": "p"})
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]
    # Then its end is on the bus too
    event = gateway.completion(lambda e: e["detail"].get("job_id") == job_id)
    assert_valid_completion(event)
    assert event["detail"]["status"] == "SUCCESS"


def test_a_step_functions_execution_waits_on_a_task_token_for_the_result(gateway: Gateway) -> None:
    # Given a caller's state machine that sends an envelope with its task token and waits
    outputs = gateway.outputs()
    sfn = gateway.aws("stepfunctions")
    definition = {
        "StartAt": "GenerateImage",
        "States": {
            "GenerateImage": {
                "Type": "Task",
                "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
                "Parameters": {
                    "QueueUrl": outputs["RequestQueueUrl"],
                    "MessageBody": {
                        "request": {"model_id": "sd1.5", "prompt": "a lighthouse"},
                        "reference.$": "$.order",
                        "task_token.$": "$$.Task.Token",
                    },
                },
                "TimeoutSeconds": 120,
                "End": True,
            }
        },
    }
    machine = sfn.create_state_machine(
        name=unique("caller"),
        definition=json.dumps(definition),
        roleArn="arn:aws:iam::123456789012:role/caller",
    )["stateMachineArn"]
    order = unique("order")
    execution = sfn.start_execution(stateMachineArn=machine, input=json.dumps({"order": order}))
    # When the job ends
    deadline = time.monotonic() + 90
    while (described := sfn.describe_execution(executionArn=execution["executionArn"]))[
        "status"
    ] == "RUNNING":
        assert time.monotonic() < deadline, "the caller's execution is still waiting"
        time.sleep(0.5)
    # Then the caller's execution succeeded with the Succeeded detail as its output
    assert described["status"] == "SUCCEEDED", described
    output = json.loads(described["output"])
    assert (output["status"], output["reference"]) == ("SUCCESS", order)
    assert output["images"][0]["key"].endswith("/0.png")


class Receiver(BaseHTTPRequestHandler):
    """A webhook endpoint that fails its first delivery (500) and takes the next ones."""

    received: list[tuple[dict[str, str], bytes, int]]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        code = 500 if not self.received else 204
        self.received.append(({k.lower(): v for k, v in self.headers.items()}, body, code))
        self.send_response(code)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        return


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[tuple[dict[str, str], bytes, int]]]]:
    received: list[tuple[dict[str, str], bytes, int]] = []
    handler = type("Handler", (Receiver,), {"received": received})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hooks/images", received
    server.shutdown()


def test_a_webhook_is_delivered_signed_and_retried_after_a_500_with_the_same_id(
    gateway: Gateway, receiver: tuple[str, list[tuple[dict[str, str], bytes, int]]]
) -> None:
    # Given an HTTP job with a webhook whose endpoint fails the first delivery
    url, received = receiver
    response = gateway.session.post(
        gateway.url + "/sd/text2image/v1",
        params={"webhook_url": url},
        json={"model_id": "fake-instant", "prompt": "p"},
        timeout=30,
    )
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]
    # When the retry has come (the Standard Webhooks schedule waits 5 s after a first failure)
    deadline = time.monotonic() + 60
    while len(received) < 2:
        assert time.monotonic() < deadline, f"{len(received)} deliveries"
        time.sleep(0.25)
    # Then both attempts carry one webhook-id, and each verifies with an independent
    # implementation of Standard Webhooks, with the stack's signing secret
    (first_headers, first_body, first_code), (headers, body, code) = received[:2]
    assert (first_code, code) == (500, 204)
    assert first_headers["webhook-id"] == headers["webhook-id"]
    verifier = Webhook(gateway.outputs()["WebhookSigningSecret"])
    for sent_headers, sent_body in ((first_headers, first_body), (headers, body)):
        payload = verifier.verify(sent_body, sent_headers)
        assert payload["type"] == "image.succeeded"
        assert payload["data"]["job_id"] == job_id

"""Fixtures' building blocks: the template's stack in moto, the fake upstream, job helpers."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import boto3
import pytest
from moto import mock_aws

from imagegateway.domain.events import EVENT_SOURCE, DetailType
from local.aws.aws_calls import calls_made_by, logical_id_of
from local.aws.lambda_runtime import load_handler
from local.aws.resources import LocalStack, build_stack
from local.aws.template import REGION
from local.fake_upstream import FakeUpstream
from tests.support.caches import clear_all

UPSTREAM_KEY = "test-upstream-key-5b1f"
# Short waits make the workflow tests fast; the logic (backoff, deadline) is unchanged.
FAST_POLLING = {"POLL_INTERVAL_SECONDS": "1", "POLL_MAX_INTERVAL_SECONDS": "1"}
# The fake upstream serves its images over http on 127.0.0.1.
LOCAL_DOWNLOADS = {"ALLOW_INSECURE_DOWNLOADS": "true", "DOWNLOAD_ALLOWED_HOSTS": "127.0.0.1"}


@contextmanager
def moto_stack(
    upstream: FakeUpstream,
    monkeypatch: pytest.MonkeyPatch,
    *,
    execute_state_machine: bool = False,
    parameters: Mapping[str, str] | None = None,
    environment: Mapping[str, str] | None = None,
) -> Iterator[LocalStack]:
    config: Any = {"stepfunctions": {"execute_state_machine": execute_state_machine}}
    with mock_aws(config=config):
        stack = build_stack(
            api_key=UPSTREAM_KEY,
            parameters={"UpstreamBaseUrl": upstream.base_url, **(parameters or {})},
            extra_environment={**FAST_POLLING, **LOCAL_DOWNLOADS, **(environment or {})},
        )
        for key, value in stack.environment.items():
            monkeypatch.setenv(key, value)
        clear_all()
        yield stack


def invoke(stack: LocalStack, function_dir: str, event: dict[str, Any]) -> Any:
    """Call a function's real handler directly, as Lambda would."""
    from local.aws.lambda_runtime import LambdaContext

    name, code_dir = next((n, d) for n, d in stack.function_dirs.items() if d.name == function_dir)
    # Its AWS calls are the function's, checked against its role (tests/support/iam_proof.py).
    with calls_made_by(logical_id_of(stack, name), stack):
        return load_handler(code_dir)(event, LambdaContext(function_name=function_dir))


def submit_job(stack: LocalStack, body: dict[str, Any] | None = None) -> str:
    """Submit through the real submit function (the events/ sample, or another body); the job
    must be accepted (202). Returns its id."""
    from tests.support.events import http_event_with_body, load_event

    event = load_event("submit") if body is None else http_event_with_body(body)
    response = invoke(stack, "submit", event)
    assert response["statusCode"] == 202, response["body"]
    job_id: str = response_body(response)["id"]
    return job_id


def ticket_of(stack: LocalStack, job_id: str) -> dict[str, Any]:
    """The workflow's first ticket for a recorded job, as the submit function starts it."""
    row = job_row(stack, job_id)
    assert row is not None, f"no job row {job_id}"
    samples = json.loads(row["request"]).get("samples") or 1
    return {
        "job_id": job_id,
        "run_token": row["run_token"],
        "status": "PENDING",
        "expected_images": samples,
        "wait_seconds": 1,
        "deadline_at": row["deadline_at"],
    }


def accept_job(stack: LocalStack, body: dict[str, Any] | None = None) -> str:
    """Submit through the real submit function, then run the workflow's SubmitUpstream task on
    it (no state machine): the job is sent upstream and its upstream id recorded."""
    job_id = submit_job(stack, body)
    ticket = invoke(stack, "submit_upstream", ticket_of(stack, job_id))
    assert ticket.get("upstream_id"), ticket
    return job_id


def wait_for_execution(job_id: str, stack: LocalStack, timeout: float = 60) -> dict[str, Any]:
    sfn = boto3.client("stepfunctions", region_name="us-east-1")
    arn = stack.state_machine_arn.replace(":stateMachine:", ":execution:") + f":{job_id}"
    deadline = time.monotonic() + timeout
    while True:
        execution: dict[str, Any] = sfn.describe_execution(executionArn=arn)
        if execution["status"] != "RUNNING":
            return execution
        if time.monotonic() > deadline:
            raise AssertionError(f"execution {job_id} still RUNNING after {timeout}s")
        time.sleep(0.2)


def execution_history(job_id: str, stack: LocalStack) -> list[dict[str, Any]]:
    sfn = boto3.client("stepfunctions", region_name="us-east-1")
    arn = stack.state_machine_arn.replace(":stateMachine:", ":execution:") + f":{job_id}"
    events: list[dict[str, Any]] = sfn.get_execution_history(executionArn=arn, maxResults=1000)[
        "events"
    ]
    return events


def entered_states(history: list[dict[str, Any]]) -> list[str]:
    return [
        event["stateEnteredEventDetails"]["name"]
        for event in history
        if "stateEnteredEventDetails" in event
    ]


def response_body(response: dict[str, Any]) -> Any:
    return json.loads(response["body"])


def bucket_keys(stack: LocalStack, prefix: str = "") -> list[str]:
    s3 = boto3.client("s3", region_name="us-east-1")
    listing = s3.list_objects_v2(Bucket=stack.bucket_name, Prefix=prefix)
    return sorted(item["Key"] for item in listing.get("Contents", []))


def job_row(stack: LocalStack, job_id: str) -> dict[str, Any] | None:
    table = boto3.resource("dynamodb", region_name="us-east-1").Table(stack.table_name)
    item: dict[str, Any] | None = table.get_item(Key={"job_id": job_id}).get("Item")
    return item


def table_rows(stack: LocalStack) -> list[dict[str, Any]]:
    table = boto3.resource("dynamodb", region_name="us-east-1").Table(stack.table_name)
    items: list[dict[str, Any]] = table.scan()["Items"]
    return items


def watch_completions(stack: LocalStack, queue_name: str) -> Callable[[], list[dict[str, Any]]]:
    """Subscribe a queue of this name to the gateway's completion events; the reader returns
    every event put on the bus so far."""

    sqs, events = (
        boto3.client("sqs", region_name=REGION),
        boto3.client("events", region_name=REGION),
    )
    url = sqs.create_queue(QueueName=queue_name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    pattern = {"source": [EVENT_SOURCE], "detail-type": [t.value for t in DetailType]}
    bus = stack.event_bus_name
    events.put_rule(Name="watch", EventBusName=bus, EventPattern=json.dumps(pattern))
    events.put_targets(Rule="watch", EventBusName=bus, Targets=[{"Id": "q", "Arn": arn}])
    seen: list[dict[str, Any]] = []

    def read() -> list[dict[str, Any]]:
        while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get(
            "Messages", []
        ):
            for message in messages:
                seen.append(json.loads(message["Body"]))
                sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        return seen

    return read

"""Per-caller daily budgets over stacks of their own (CALLER_DAILY_IMAGE_BUDGET=3, and 0): the
request that does not fit is refused before anything is sent, over HTTP (429) and from the queue
(a Failed event), a day's first one too; GET /v1/usage shows the day's count."""

from __future__ import annotations

import json
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from local.aws.aws_calls import CallSink
from local.stack import StackProcess
from tests.e2e.conftest import STACK_ENVIRONMENT, Gateway

BUDGET = 3


def budget_stack(budget: int, aws_calls: list[CallSink]) -> Iterator[Gateway]:
    directory = Path(tempfile.mkdtemp(prefix="e2e-budget-"))
    outputs = str(directory / "stack-outputs.json")
    calls = directory / "aws-calls.jsonl"
    environment = {
        **STACK_ENVIRONMENT,
        "STACK_OUTPUTS_FILE": outputs,
        "LOCAL_AWS_CALLS_FILE": str(calls),
        "CALLER_DAILY_IMAGE_BUDGET": str(budget),
    }
    process = StackProcess(environment=environment)
    urls = process.start(timeout=90)
    with requests.Session() as session:
        yield Gateway(
            process, urls.gateway, urls.moto, urls.upstream, session, [], outputs_file=outputs
        )
    code = process.stop()
    aws_calls.append(CallSink.read(calls))  # proven with the session's (tests/conftest.py)
    assert code == 0, process.output(last=40)


@pytest.fixture(scope="module")
def budgeted(aws_calls: list[CallSink]) -> Iterator[Gateway]:
    yield from budget_stack(BUDGET, aws_calls)


@pytest.fixture(scope="module")
def blocked(aws_calls: list[CallSink]) -> Iterator[Gateway]:
    """A budget of 0: every caller is meant to be blocked."""
    yield from budget_stack(0, aws_calls)


def submits_of(gateway: Gateway, model_id: str) -> int:
    return int(gateway.upstream_stats()["submits_by_model"].get(model_id, 0))


def usage_of(gateway: Gateway, caller: str) -> tuple[int, int, int]:
    usage = gateway.session.get(
        gateway.url + "/v1/usage", headers={"X-Local-Caller": caller}, timeout=10
    ).json()
    return usage["images"], usage["budget"], usage["remaining"]


def queue_as(gateway: Gateway, sender: str, envelope: dict[str, Any]) -> None:
    """Put an envelope on the request queue as the local IAM user `sender` (a caller of its own,
    whatever the other tests' queued requests spent)."""
    gateway.aws("sqs").send_message(
        QueueUrl=gateway.outputs()["RequestQueueUrl"],
        MessageBody=json.dumps(envelope),
        MessageAttributes={"LocalSender": {"DataType": "String", "StringValue": sender}},
    )


def assert_refused_over_http(gateway: Gateway, *, samples: int, budget: int) -> None:
    # Given a caller that has spent nothing today
    caller, model = f"first-{uuid.uuid4().hex[:8]}", f"budget-first-{uuid.uuid4().hex[:8]}"
    # When its day's first job asks for more images than the whole budget
    refused = gateway.submit(
        {"model_id": model, "prompt": "fox", "samples": samples}, caller=caller
    )
    # Then it is a 429 BUDGET_EXCEEDED, never sent, and the day's usage still shows nothing spent
    assert refused.status_code == 429, refused.text
    assert refused.json()["error_code"] == "BUDGET_EXCEEDED"
    # (worth retrying after the reset, as the code decides: its message says it never fits)
    assert refused.json()["retryable"] is True
    time.sleep(1)
    assert submits_of(gateway, model) == 0
    assert usage_of(gateway, caller) == (0, budget, budget)


def assert_refused_from_the_queue(gateway: Gateway, *, samples: int, budget: int) -> None:
    # Given a queue sender that has spent nothing today
    sender, model = f"q-{uuid.uuid4().hex[:8]}", f"budget-qfirst-{uuid.uuid4().hex[:8]}"
    reference = f"first-{uuid.uuid4().hex[:8]}"
    # When its day's first request asks for more images than the whole budget
    request = {"model_id": model, "prompt": "fox", "samples": samples}
    queue_as(gateway, sender, {"request": request, "reference": reference})
    # Then it ends as a Failed event with BUDGET_EXCEEDED, never sent, nothing counted
    event = gateway.completion(lambda event: event["detail"].get("reference") == reference)
    assert event["detail-type"] == "Image Generation Failed"
    assert event["detail"]["error_code"] == "BUDGET_EXCEEDED"
    assert event["detail"]["retryable"] is True
    assert submits_of(gateway, model) == 0
    assert usage_of(gateway, sender) == (0, budget, budget)


def test_a_days_first_job_bigger_than_the_budget_is_a_429(budgeted: Gateway) -> None:
    assert_refused_over_http(budgeted, samples=BUDGET + 1, budget=BUDGET)


def test_a_days_first_queued_job_bigger_than_the_budget_fails(budgeted: Gateway) -> None:
    assert_refused_from_the_queue(budgeted, samples=BUDGET + 1, budget=BUDGET)


def test_a_budget_of_0_refuses_a_callers_first_job_over_http(blocked: Gateway) -> None:
    assert_refused_over_http(blocked, samples=1, budget=0)


def test_a_budget_of_0_refuses_a_senders_first_queued_job(blocked: Gateway) -> None:
    assert_refused_from_the_queue(blocked, samples=1, budget=0)


def test_the_request_over_a_callers_budget_is_a_429_and_never_sent(budgeted: Gateway) -> None:
    # Given a budget of 3 images a day, and a caller whose three single-image jobs ran
    caller, model = "budget-caller", f"budget-{uuid.uuid4().hex[:8]}"
    for n in range(BUDGET):
        accepted = budgeted.submit({"model_id": model, "prompt": f"fox {n}"}, caller=caller)
        assert accepted.status_code == 202, accepted.text
        budgeted.wait(accepted.json()["id"], caller=caller)
    # When it asks for a fourth
    refused = budgeted.submit({"model_id": model, "prompt": "fox 4"}, caller=caller)
    # Then it is refused with the budget's code, when it resets, and no job
    assert refused.status_code == 429, refused.text
    body = refused.json()
    assert (body["status"], body["error_code"]) == ("FAILURE", "BUDGET_EXCEEDED")
    tomorrow = datetime.now(UTC).date() + timedelta(days=1)
    assert datetime.fromisoformat(body["resets_at"]).date() == tomorrow
    assert 0 < int(refused.headers["Retry-After"]) <= 24 * 3600
    assert "id" not in body
    # And the upstream got three POSTs, never the fourth
    time.sleep(1)
    assert submits_of(budgeted, model) == BUDGET
    # And the caller's usage says so; another caller still has its whole budget
    usage = budgeted.session.get(
        budgeted.url + "/v1/usage", headers={"X-Local-Caller": caller}, timeout=10
    ).json()
    assert (usage["images"], usage["budget"], usage["remaining"]) == (BUDGET, BUDGET, 0)
    other = budgeted.submit({"model_id": model, "prompt": "fox"}, caller="another-caller")
    assert other.status_code == 202, other.text


def test_a_queued_request_over_the_budget_ends_as_a_failed_event(budgeted: Gateway) -> None:
    # Given queued requests from one sender (the local account): three images, then one more
    model = f"budget-queue-{uuid.uuid4().hex[:8]}"
    sqs, queue = budgeted.aws("sqs"), budgeted.outputs()["RequestQueueUrl"]
    first = {"kind": "text2image", "request": {"model_id": model, "prompt": "a", "samples": 3}}
    sqs.send_message(QueueUrl=queue, MessageBody=json.dumps({**first, "reference": "fits"}))
    budgeted.completion(lambda event: event["detail"].get("reference") == "fits")
    over = {"kind": "text2image", "request": {"model_id": model, "prompt": "b"}}
    # When the fourth image is asked for
    sqs.send_message(QueueUrl=queue, MessageBody=json.dumps({**over, "reference": "over"}))
    # Then it ends at once as a Failed event with BUDGET_EXCEEDED, and was never sent
    event = budgeted.completion(lambda event: event["detail"].get("reference") == "over")
    assert event["detail-type"] == "Image Generation Failed"
    assert event["detail"]["error_code"] == "BUDGET_EXCEEDED"
    assert submits_of(budgeted, model) == 1


def test_requests_served_from_the_cache_do_not_count(budgeted: Gateway) -> None:
    # Given a caller's fixed-seed job that ran (1 image of its 3)
    caller, model = "cache-caller", f"budget-cache-{uuid.uuid4().hex[:8]}"
    body = {"model_id": model, "prompt": "a fox", "seed": 42}
    first = budgeted.submit(body, caller=caller)
    assert first.status_code == 202, first.text
    budgeted.wait(first.json()["id"], caller=caller)
    # When the same request comes back four times
    answers = [budgeted.submit(body, caller=caller) for _ in range(4)]
    # Then each is served (200, from the first job), and the day still counts 1 image
    assert [answer.status_code for answer in answers] == [200] * 4
    usage = budgeted.session.get(
        budgeted.url + "/v1/usage", headers={"X-Local-Caller": caller}, timeout=10
    ).json()
    assert usage["images"] == 1
    assert submits_of(budgeted, model) == 1

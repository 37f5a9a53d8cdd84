"""The workflow's SubmitUpstream task: the job's one paid POST, against moto and the fake
upstream over real HTTP (staged with its script hook). No state machine here."""

from __future__ import annotations

import socket
from typing import Any

import boto3
import pytest

from imagegateway.domain.errors import (
    ForeignTicketError,
    UpstreamAuthError,
    UpstreamOutcomeUnknownError,
    UpstreamTimeoutError,
)
from local.aws.resources import LocalStack
from local.fake_upstream import FakeUpstream
from tests.support.caches import clear_all
from tests.support.stack import invoke, job_row, submit_job, ticket_of

MODEL = "scripted-model"


def submitted(stack: LocalStack, model_id: str = MODEL) -> tuple[str, dict[str, Any]]:
    job_id = submit_job(stack, {"model_id": model_id, "prompt": "a lighthouse"})
    return job_id, ticket_of(stack, job_id)


def test_an_accepted_job_records_its_upstream_id_once(
    stack: LocalStack, upstream: FakeUpstream
) -> None:
    # Given a recorded job
    job_id, ticket = submitted(stack, "sd1.5")
    # When the task sends it
    result = invoke(stack, "submit_upstream", ticket)
    # Then the upstream took it once, and the row and the ticket carry its id
    assert result["status"] == "PENDING"
    row = job_row(stack, job_id)
    assert row is not None
    assert result["upstream_id"] == row["upstream_id"]
    assert upstream.stats()["submits"] == 1
    # And a re-run (Step Functions retrying a lost answer) reuses it without a second POST
    again = invoke(stack, "submit_upstream", ticket)
    assert again["upstream_id"] == row["upstream_id"]
    assert upstream.stats()["submits"] == 1


def test_an_upstream_refusal_ends_the_job_with_its_message(
    stack: LocalStack, upstream: FakeUpstream
) -> None:
    _, ticket = submitted(stack, "fake-reject")
    result = invoke(stack, "submit_upstream", ticket)
    assert result["status"] == "FAILURE"
    assert result["failure"]["code"] == "UPSTREAM_REJECTED"
    assert "fake-reject" in result["failure"]["message"]


@pytest.mark.parametrize(
    "answer",
    [
        {"code": 502, "body": "<html>502 Bad Gateway</html>"},
        {"code": 504, "body": "<html>504 Gateway Time-out</html>"},
        {"code": 200, "json": {"status": "PENDING"}},
        {"code": 200, "body": "<html>accepted</html>"},
    ],
    ids=["502", "504", "pending-without-id", "not-json"],
)
def test_an_answer_that_may_hide_an_accepted_job_is_never_posted_again(
    stack: LocalStack, upstream: FakeUpstream, answer: dict[str, Any]
) -> None:
    # Given an upstream that takes the job, then answers something that does not prove it
    upstream.script({"model_id": MODEL, "submit": [{**answer, "accept": True}]})
    job_id, ticket = submitted(stack)
    # When the task sends it
    # Then the outcome is unknown: the job ends with a code saying the upstream may hold it
    with pytest.raises(UpstreamOutcomeUnknownError):
        invoke(stack, "submit_upstream", ticket)
    # And a re-run of the task (a retry, a duplicate) never POSTs again: within any run's life
    # it follows the claim (looks again later), past it the job ends with an unknown outcome
    rerun = invoke(stack, "submit_upstream", ticket)
    assert (rerun["status"], rerun.get("upstream_id")) == ("PENDING", None)
    assert upstream.stats()["submits"] == 1
    assert len(upstream.stats()["jobs"]) == 1
    row = job_row(stack, job_id)
    assert row is not None
    assert row["submit_started_at"]


def test_a_post_the_upstream_never_answers_keeps_its_claim(
    stack: LocalStack, upstream: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given an upstream that takes the job and answers after the read timeout
    upstream.script(
        {
            "model_id": MODEL,
            "submit": [
                {
                    "code": 200,
                    "accept": True,
                    "delay_seconds": 3,
                    "json": {"status": "PENDING", "id": "{{id}}"},
                }
            ],
        }
    )
    monkeypatch.setenv("UPSTREAM_SUBMIT_READ_TIMEOUT_SECONDS", "1")
    clear_all()
    _, ticket = submitted(stack)
    # When the task sends it, and is retried
    with pytest.raises(UpstreamTimeoutError):
        invoke(stack, "submit_upstream", ticket)
    rerun = invoke(stack, "submit_upstream", ticket)  # follows the claim, never POSTs
    assert (rerun["status"], rerun.get("upstream_id")) == ("PENDING", None)
    # Then there was one POST only
    assert upstream.stats()["submits"] == 1


def test_a_rate_limited_submit_waits_in_the_workflow_and_is_sent_again(
    stack: LocalStack, upstream: FakeUpstream
) -> None:
    # Given an upstream that refuses the first POST with 429 and Retry-After: 30
    upstream.script(
        {
            "model_id": MODEL,
            "submit": [
                {
                    "code": 429,
                    "headers": {"Retry-After": "30"},
                    "json": {"status": "FAILURE", "error": "slow down"},
                }
            ],
        }
    )
    job_id, ticket = submitted(stack)
    # When the task sends it
    deferred = invoke(stack, "submit_upstream", ticket)
    # Then the job waits 30 s in the workflow, its claim released (nothing was taken)
    assert (deferred["status"], deferred.get("upstream_id")) == ("PENDING", None)
    assert deferred["wait_seconds"] == 30
    row = job_row(stack, job_id)
    assert row is not None
    assert "submit_started_at" not in row
    # And the next attempt is sent and accepted
    accepted = invoke(stack, "submit_upstream", deferred)
    assert accepted["upstream_id"]
    assert upstream.stats()["submits"] == 2
    assert len(upstream.stats()["jobs"]) == 1


def test_an_unreachable_upstream_is_tried_again_later(
    stack: LocalStack, upstream: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given an upstream address where nothing listens
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    monkeypatch.setenv("UPSTREAM_BASE_URL", f"http://127.0.0.1:{closed_port}")
    clear_all()
    job_id, ticket = submitted(stack, "sd1.5")
    # When the task sends it
    deferred = invoke(stack, "submit_upstream", ticket)
    # Then nothing was sent: the job waits and tries again, and may still be sent
    assert deferred["status"] == "PENDING"
    assert deferred["wait_seconds"] >= 1
    assert deferred["submit_attempts"] == 1
    row = job_row(stack, job_id)
    assert row is not None
    assert "submit_started_at" not in row


def test_a_refused_gateway_key_fails_the_job_and_blames_the_gateway(
    stack: LocalStack, upstream: FakeUpstream
) -> None:
    boto3.client("secretsmanager", region_name="us-east-1").put_secret_value(
        SecretId=stack.secret_arn, SecretString="wrong-key"
    )
    _, ticket = submitted(stack, "sd1.5")
    with pytest.raises(UpstreamAuthError, match="API key") as raised:
        invoke(stack, "submit_upstream", ticket)
    assert "wrong-key" not in str(raised.value)


def test_a_ticket_that_does_not_match_its_job_is_refused(
    stack: LocalStack, upstream: FakeUpstream
) -> None:
    # Given an execution input naming a real job with a forged run token
    _, ticket = submitted(stack, "sd1.5")
    forged = {**ticket, "run_token": "forged-token-0123456789abcdef"}
    # When the task runs on it
    with pytest.raises(ForeignTicketError):
        invoke(stack, "submit_upstream", forged)
    # Then nothing was sent upstream
    assert upstream.stats()["submits"] == 0


def test_a_failure_the_intake_met_while_sending_passes_through_without_a_post(
    stack: LocalStack, upstream: FakeUpstream
) -> None:
    # Given a job the queue's intake already sent, whose send ended it (an unknown outcome):
    # its workflow starts with that failure on the ticket, and the row holds the claim
    job_id, ticket = submitted(stack, "sd1.5")
    boto3.resource("dynamodb", region_name="us-east-1").Table(stack.table_name).update_item(
        Key={"job_id": job_id},
        UpdateExpression="SET submit_started_at = :t",
        ExpressionAttributeValues={":t": "2026-11-25T12:00:00+00:00"},
    )
    failure = {"code": "UPSTREAM_OUTCOME_UNKNOWN", "message": "the upstream answered 502"}
    # When SubmitUpstream runs on it
    result = invoke(stack, "submit_upstream", {**ticket, "status": "FAILURE", "failure": failure})
    # Then it hands the failure on as it is, to RecordFailure, and sends nothing
    assert (result["status"], result["failure"]) == ("FAILURE", failure)
    assert upstream.stats()["submits"] == 0

"""The state machine's task functions, each driven by its events/ sample, against moto and the
fake upstream (no state machine here: that is tests/workflow)."""

from __future__ import annotations

import hashlib
import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
import requests

from imagegateway.domain.errors import JobEndedElsewhereError
from imagegateway.domain.tickets import JobTicket
from local.aws.resources import LocalStack
from local.fake_upstream import FakeUpstream
from tests.support.caches import clear_all
from tests.support.events import load_event, status_event, with_caller
from tests.support.stack import (
    UPSTREAM_KEY,
    accept_job,
    bucket_keys,
    invoke,
    job_row,
    response_body,
    table_rows,
)


def ticket_for(stack: LocalStack, job_id: str, sample: str) -> dict[str, Any]:
    """The events/ sample ticket, pointed at a real job."""
    row = job_row(stack, job_id)
    assert row is not None
    ticket = load_event(sample)
    ticket["job_id"] = job_id
    ticket["run_token"] = row["run_token"]
    ticket["upstream_id"] = row["upstream_id"]
    ticket["deadline_at"] = (datetime.now(UTC) + timedelta(minutes=5)).isoformat()
    return ticket


def upstream_urls(upstream: FakeUpstream, upstream_id: str) -> list[str]:
    answer = requests.get(
        f"{upstream.base_url}/sd/text2image/v1/status/{upstream_id}",
        headers={"API-Key": UPSTREAM_KEY},
        timeout=5,
    ).json()
    urls: list[str] = answer.get("download_urls", [])
    return urls


def test_check_upstream_polls_in_function_until_the_upstream_finishes(
    stack: LocalStack, upstream: FakeUpstream
) -> None:
    # Given an accepted job and the sample check_upstream ticket for it (the template's
    # default: one invocation keeps asking every second)
    job_id = accept_job(stack, {"model_id": "sd1.5", "prompt": "a fox"})
    ticket = ticket_for(stack, job_id, "check_upstream")
    # When the status is checked once
    started = time.monotonic()
    ticket = invoke(stack, "check_upstream", ticket)
    # Then that one invocation saw it through PENDING to SUCCESS, a second per ask
    parsed = JobTicket.model_validate(ticket)
    assert parsed.status == "SUCCESS"
    assert parsed.polls == upstream.pending_polls + 1
    assert time.monotonic() - started >= upstream.pending_polls
    assert upstream.stats()["status_checks"] == upstream.pending_polls + 1
    assert not parsed.deadline_passed
    assert len(parsed.download_urls) == 1
    assert parsed.upstream_completed_at is not None


def test_check_upstream_without_a_stretch_checks_once_per_invocation(
    stack: LocalStack, upstream: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given StatusCheckStretchSeconds=0 (one GET per check, the state machine backing off)
    monkeypatch.setenv("UPSTREAM_POLL_STRETCH_SECONDS", "0")
    clear_all()
    job_id = accept_job(stack, {"model_id": "sd1.5", "prompt": "a fox"})
    ticket = ticket_for(stack, job_id, "check_upstream")
    # When the status is checked until the upstream finishes
    seen = []
    for _ in range(upstream.pending_polls + 1):
        ticket = invoke(stack, "check_upstream", ticket)
        seen.append(ticket["status"])
    # Then it was PENDING with a wait, then SUCCESS with the download URLs and the time seen
    assert seen == ["PENDING"] * upstream.pending_polls + ["SUCCESS"]
    parsed = JobTicket.model_validate(ticket)
    assert parsed.polls == upstream.pending_polls + 1
    assert parsed.wait_seconds >= 1
    assert len(parsed.download_urls) == 1


def test_check_upstream_flags_a_passed_deadline(stack: LocalStack, upstream: FakeUpstream) -> None:
    # Given a job whose deadline is already behind it
    job_id = accept_job(stack, {"model_id": "fake-never", "prompt": "a fox"})
    ticket = ticket_for(stack, job_id, "check_upstream")
    ticket["deadline_at"] = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    # When it is checked
    result = invoke(stack, "check_upstream", ticket)
    # Then it is still PENDING upstream, and the deadline is reported passed
    assert (result["status"], result["deadline_passed"]) == ("PENDING", True)


def test_check_upstream_lets_a_typed_error_escape_for_retry_and_catch(
    stack: LocalStack, upstream: FakeUpstream
) -> None:
    # Given an accepted job, and the secret now holds a key the upstream refuses
    ticket = ticket_for(stack, accept_job(stack), "check_upstream")
    boto3.client("secretsmanager", region_name="us-east-1").put_secret_value(
        SecretId=stack.secret_arn, SecretString="not-the-key"
    )
    from tests.support.caches import clear_all

    clear_all()  # the key was cached when the job was sent
    # When it is checked
    # Then the error's class is what Step Functions matches on
    from imagegateway.domain.errors import UpstreamAuthError

    with pytest.raises(UpstreamAuthError):
        invoke(stack, "check_upstream", ticket)


def test_store_images_copies_every_image_and_marks_the_job_success(
    stack: LocalStack, upstream: FakeUpstream
) -> None:
    # Given a job the upstream has finished with two images
    job_id = accept_job(stack, {"model_id": "sd1.5", "prompt": "a fox", "samples": 2})
    upstream_id = str(job_row(stack, job_id)["upstream_id"])  # type: ignore[index]
    for _ in range(upstream.pending_polls):
        upstream_urls(upstream, upstream_id)
    ticket = ticket_for(stack, job_id, "store_images")
    ticket["download_urls"] = upstream_urls(upstream, upstream_id)
    ticket["expected_images"] = 2
    # When the store task runs, twice (as a retry or an Express duplicate would)
    first = invoke(stack, "store_images", ticket)
    # Then the second copies over the same keys but ends quietly: one ending, told once
    with pytest.raises(JobEndedElsewhereError):
        invoke(stack, "store_images", ticket)
    # And exactly two objects exist
    assert first["detail_type"] == "Image Generation Succeeded"
    assert bucket_keys(stack) == [f"jobs/{job_id}/0.png", f"jobs/{job_id}/1.png"]
    s3 = boto3.client("s3", region_name="us-east-1")
    for image in first["detail"]["images"]:
        assert image["bucket"] == stack.bucket_name
        data = s3.get_object(Bucket=stack.bucket_name, Key=image["key"])["Body"].read()
        assert image["sha256"] == hashlib.sha256(data).hexdigest()
        assert image["size"] == len(data)
    # And the job is SUCCESS
    row = job_row(stack, job_id)
    assert row is not None
    assert row["status"] == "SUCCESS"


def test_store_images_of_a_missing_image_is_a_download_error(
    stack: LocalStack, upstream: FakeUpstream
) -> None:
    # Given download URLs that answer 404
    job_id = accept_job(stack, {"model_id": "fake-broken-image", "prompt": "a fox"})
    ticket = ticket_for(stack, job_id, "store_images")
    ticket["download_urls"] = [f"{upstream.base_url}/images/nope/0.png"]
    # When the store task runs
    # Then it raises the error the workflow retries, and stores nothing
    from imagegateway.domain.errors import ImageDownloadError

    with pytest.raises(ImageDownloadError):
        invoke(stack, "store_images", ticket)
    assert bucket_keys(stack) == []


@pytest.mark.parametrize(
    ("sample", "code", "message"),
    [
        ("record_failure", "UPSTREAM_FAILURE", "the model crashed while sampling"),
        ("record_failure_caught", "DOWNLOAD_FAILED", "image 0: the upstream answered 404"),
    ],
)
def test_record_failure_marks_the_job_failure_with_code_and_message(
    stack: LocalStack, upstream: FakeUpstream, sample: str, code: str, message: str
) -> None:
    # Given an accepted job and a failure ticket (set by a state, or caught from a task)
    job_id = accept_job(stack, {"model_id": "sd1.5", "prompt": "a fox"})
    ticket = ticket_for(stack, job_id, sample)
    # When the failure path runs
    result = invoke(stack, "record_failure", ticket)
    # Then the job is FAILURE with a code and a message a caller can act on, told (the
    # completion it answers with is the one it put on the bus)
    assert result["detail_type"] == "Image Generation Failed"
    detail = result["detail"]
    assert (detail["job_id"], detail["status"]) == (job_id, "FAILURE")
    assert (detail["error_code"], detail["error"]) == (code, message)
    row = job_row(stack, job_id)
    assert row is not None
    assert (row["status"], row["error_code"], row["error_message"]) == ("FAILURE", code, message)


@pytest.mark.parametrize(
    ("error", "cause", "code"),
    [
        (
            "ClientError",
            "An error occurred (AccessDeniedException) when calling the PutObject operation: "
            "User: arn:aws:sts::123456789012:assumed-role/gw-StoreImagesRole/x is not "
            "authorized on arn:aws:s3:::gw-imagesbucket-abc/jobs/1/0.png",
            "INTERNAL_ERROR",
        ),
        ("Sandbox.Timedout", "Task timed out after 120.00 seconds", "INTERNAL_ERROR"),
        ("GatewayError", "resolves to 10.0.3.7 via vpc-0abc", "INTERNAL_ERROR"),
    ],
)
def test_internal_error_text_never_reaches_the_caller(
    stack: LocalStack, upstream: FakeUpstream, error: str, cause: str, code: str
) -> None:
    # Given a task that failed on an error whose text names roles, buckets or addresses
    job_id = accept_job(stack, {"model_id": "sd1.5", "prompt": "a fox"})
    ticket = ticket_for(stack, job_id, "record_failure_caught")
    ticket["failure"] = {
        "Error": error,
        "Cause": json.dumps({"errorType": error, "errorMessage": cause}),
    }
    # When the failure path records it
    invoke(stack, "record_failure", ticket)
    # Then the caller reads a stable code and words written for callers, none of that text
    view = response_body(invoke(stack, "job_status", status_event(job_id)))
    assert (view["status"], view["error_code"]) == ("FAILURE", code)
    for leaked in ("arn:", "10.0.3.7", "gw-imagesbucket", "AccessDenied", "Task timed out"):
        assert leaked not in view["error"]


def test_record_failure_never_overwrites_a_success(
    stack: LocalStack, upstream: FakeUpstream
) -> None:
    # Given a job that already succeeded
    job_id = accept_job(stack, {"model_id": "sd1.5", "prompt": "a fox"})
    table = boto3.resource("dynamodb", region_name="us-east-1").Table(stack.table_name)
    table.update_item(
        Key={"job_id": job_id},
        UpdateExpression="SET #s = :s",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={":s": "SUCCESS"},
    )
    # When a late failure is recorded / Then it is refused: the execution ends quietly
    with pytest.raises(JobEndedElsewhereError):
        invoke(stack, "record_failure", ticket_for(stack, job_id, "record_failure"))
    # Then the job stays SUCCESS
    assert job_row(stack, job_id)["status"] == "SUCCESS"  # type: ignore[index]


def test_jobs_answers_404_for_an_unknown_id(stack: LocalStack, upstream: FakeUpstream) -> None:
    # Given the sample status event, for an id nobody created
    response = invoke(stack, "job_status", load_event("job_status"))
    # Then the answer is 404 in the contract's shape
    assert response["statusCode"] == 404
    assert response_body(response)["status"] == "FAILURE"


def test_jobs_shows_a_pending_job_to_its_owner_only(
    stack: LocalStack, upstream: FakeUpstream
) -> None:
    # Given a job submitted by the sample event's IAM caller
    job_id = accept_job(stack, {"model_id": "sd1.5", "prompt": "a fox"})
    # When its owner asks, it is PENDING without URLs or error, with its prompt's tokens, its
    # own request, and no ETA (a shape the gateway has not seen finish)
    mine = invoke(stack, "job_status", status_event(job_id))
    assert mine["statusCode"] == 200
    assert response_body(mine) | {"timings": None} == {
        "status": "PENDING",
        "id": job_id,
        "kind": "text2image",
        "timings": None,
        "tokens": {"prompt": 2, "negative_prompt": 0, "limit": 75},
        "request": {"model_id": "sd1.5", "prompt": "a fox"},
        "estimate": "none",
    }
    # And another principal gets 404, exactly as for an unknown id
    theirs = invoke(
        stack,
        "job_status",
        with_caller(status_event(job_id), "arn:aws:sts::123456789012:assumed-role/other/bob"),
    )
    assert theirs["statusCode"] == 404
    assert len(table_rows(stack)) == 1


def test_store_images_never_stores_a_partial_set(stack: LocalStack, upstream: FakeUpstream) -> None:
    # Given a job that asked for 4 images and an upstream SUCCESS listing only one
    job_id = accept_job(stack, {"model_id": "sd1.5", "prompt": "a fox", "samples": 4})
    upstream_id = str(job_row(stack, job_id)["upstream_id"])  # type: ignore[index]
    for _ in range(upstream.pending_polls):
        upstream_urls(upstream, upstream_id)
    ticket = ticket_for(stack, job_id, "store_images")
    ticket["download_urls"] = upstream_urls(upstream, upstream_id)[:1]
    ticket["expected_images"] = 4
    # When the store task runs
    # Then it fails with its own code, and nothing is stored
    from imagegateway.domain.errors import IncompleteResultError

    with pytest.raises(IncompleteResultError):
        invoke(stack, "store_images", ticket)
    assert bucket_keys(stack) == []


@pytest.mark.parametrize("task", ["check_upstream", "store_images", "record_failure"])
def test_every_task_refuses_a_ticket_that_does_not_match_its_job(
    stack: LocalStack, upstream: FakeUpstream, task: str
) -> None:
    # Given a real job, and an execution input for it with a forged run token (anyone with
    # states:StartExecution could start the machine with their own input)
    job_id = accept_job(stack)
    ticket = ticket_for(stack, job_id, "store_images" if task == "store_images" else task)
    ticket["run_token"] = "forged-run-token-0123456789"
    ticket["download_urls"] = ["http://127.0.0.1:9/elsewhere.png"]
    # When the task runs on it
    from imagegateway.domain.errors import ForeignTicketError

    with pytest.raises(ForeignTicketError):
        invoke(stack, task, ticket)
    # Then the job is untouched and nothing was stored
    row = job_row(stack, job_id)
    assert row is not None
    assert row["status"] == "PENDING"
    assert bucket_keys(stack) == []

"""The real statemachine/image_job.asl.json, executed by moto's ASL interpreter; its Lambda
tasks run the real handlers; the upstream is the fake one over HTTP."""

from __future__ import annotations

import hashlib
import struct
from typing import Any

import boto3
import requests

from local.aws.resources import LocalStack
from local.fake_upstream import FakeUpstream
from tests.support.events import status_event
from tests.support.stack import (
    bucket_keys,
    entered_states,
    execution_history,
    invoke,
    job_row,
    response_body,
    submit_job,
    wait_for_execution,
)


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_happy_path_stores_every_image_and_hands_out_presigned_urls(
    stack: LocalStack, upstream: FakeUpstream, invocations: list[dict[str, Any]]
) -> None:
    # Given a request for two 256x192 images
    body = {
        "model_id": "sd1.5",
        "prompt": "a lighthouse",
        "samples": 2,
        "width": 256,
        "height": 192,
        "seed": 7,
    }
    # When it is submitted and its execution runs to the end
    job_id = submit_job(stack, body)
    execution = wait_for_execution(job_id, stack)
    # Then the execution succeeded after one status check that asked until the upstream
    # finished (in-function polling: one loop of the state machine)
    assert execution["status"] == "SUCCEEDED"
    states = entered_states(execution_history(job_id, stack))
    assert states[:2] == ["SubmitUpstream", "RouteSubmitAnswer"]
    assert upstream.stats()["submits"] == 1
    assert states.count("CheckStatus") == 1
    assert upstream.stats()["status_checks"] == upstream.pending_polls + 1
    assert "WaitBeforeCheck" in states
    assert states[-1] == "StoreImages"  # it stores and tells
    # And both images are objects in S3 under deterministic keys
    assert bucket_keys(stack) == [f"jobs/{job_id}/0.png", f"jobs/{job_id}/1.png"]
    # And the job row is SUCCESS with type, size and sha256 of each image
    row = job_row(stack, job_id)
    assert row is not None
    assert row["status"] == "SUCCESS"
    s3 = boto3.client("s3", region_name="us-east-1")
    for image in row["images"]:
        stored = s3.get_object(Bucket=stack.bucket_name, Key=image["key"])
        data = stored["Body"].read()
        assert stored["ContentType"] == image["content_type"] == "image/png"
        assert int(image["size"]) == len(data)
        assert image["sha256"] == hashlib.sha256(data).hexdigest()
        assert png_size(data) == (256, 192)
    # And GET status answers SUCCESS with presigned URLs that serve those images
    response = invoke(stack, "job_status", status_event(job_id))
    view = response_body(response)
    assert response["statusCode"] == 200
    assert view["status"] == "SUCCESS"
    assert len(view["download_urls"]) == 2
    for url in view["download_urls"]:
        assert "X-Amz-Signature=" in url
        assert "X-Amz-Expires=3600" in url
        # moto's in-process mock answers the presigned GET like S3 would
        assert png_size(requests.get(url, timeout=10).content) == (256, 192)
    assert view["timings"]["copy_seconds"] is not None
    assert view["timings"]["queued_seconds"] is not None
    # And every task ran the real handler
    assert {call["function"].split("-")[2] for call in invocations} >= {
        "SubmitUpstreamFunction",
        "CheckUpstreamFunction",
        "StoreImagesFunction",
    }


def test_an_upstream_failure_ends_failure_with_the_upstreams_message(
    stack: LocalStack, upstream: FakeUpstream, invocations: list[dict[str, Any]]
) -> None:
    # Given a job the upstream will fail after one PENDING
    job_id = submit_job(stack, {"model_id": "fake-failure", "prompt": "a fox"})
    # When its execution runs
    execution = wait_for_execution(job_id, stack)
    # Then the execution ends through the failure path
    assert execution["status"] == "SUCCEEDED"  # the workflow worked; the job failed
    assert entered_states(execution_history(job_id, stack))[-1] == "RecordFailure"
    # And the job is FAILURE with the upstream's own message, and no image was stored
    view = response_body(invoke(stack, "job_status", status_event(job_id)))
    assert view["status"] == "FAILURE"
    assert view["error_code"] == "UPSTREAM_FAILURE"
    assert "crashed" in view["error"]
    assert "download_urls" not in view
    assert bucket_keys(stack) == []


def test_an_instant_success_is_stored_without_any_wait(
    stack: LocalStack, upstream: FakeUpstream, invocations: list[dict[str, Any]]
) -> None:
    # Given the upstream answers SUCCESS at submit
    job_id = submit_job(stack, {"model_id": "fake-instant", "prompt": "a fox", "samples": 3})
    # When the execution runs
    execution = wait_for_execution(job_id, stack)
    # Then it goes straight to storing: no Wait, no status check
    assert execution["status"] == "SUCCEEDED"
    states = entered_states(execution_history(job_id, stack))
    assert states == ["SubmitUpstream", "RouteSubmitAnswer", "StoreImages"]
    assert upstream.stats()["status_checks"] == 0
    assert len(bucket_keys(stack, f"jobs/{job_id}/")) == 3


def test_an_upstream_refusal_ends_failure_with_its_message(
    stack: LocalStack, upstream: FakeUpstream, invocations: list[dict[str, Any]]
) -> None:
    # Given a model the upstream does not know
    job_id = submit_job(stack, {"model_id": "fake-reject", "prompt": "a fox"})
    # When the execution runs
    execution = wait_for_execution(job_id, stack)
    # Then the job is FAILURE with the upstream's message, and nothing was polled
    assert execution["status"] == "SUCCEEDED"
    view = response_body(invoke(stack, "job_status", status_event(job_id)))
    assert (view["status"], view["error_code"]) == ("FAILURE", "UPSTREAM_REJECTED")
    assert "fake-reject" in view["error"]
    assert upstream.stats()["status_checks"] == 0


def test_a_rate_limited_submit_waits_in_the_state_machine_then_succeeds(
    stack: LocalStack, upstream: FakeUpstream, invocations: list[dict[str, Any]]
) -> None:
    # Given an upstream that refuses the first POST with 429 and Retry-After: 1
    upstream.script(
        {
            "model_id": "busy-model",
            "submit": [{"code": 429, "headers": {"Retry-After": "1"}, "body": "slow down"}],
        }
    )
    job_id = submit_job(stack, {"model_id": "busy-model", "prompt": "a fox"})
    # When the execution runs
    execution = wait_for_execution(job_id, stack)
    # Then it waited in a Wait state, sent the job again, and the job succeeded
    assert execution["status"] == "SUCCEEDED"
    states = entered_states(execution_history(job_id, stack))
    assert states[:4] == [
        "SubmitUpstream",
        "RouteSubmitAnswer",
        "WaitBeforeSubmit",
        "SubmitUpstream",
    ]
    assert states[-1] == "StoreImages"
    assert upstream.stats()["submits"] == 2
    assert len(upstream.stats()["jobs"]) == 1


def test_a_status_check_asked_to_wait_an_hour_waits_until_the_deadline_not_in_lambda(
    stack: LocalStack, upstream: FakeUpstream, invocations: list[dict[str, Any]]
) -> None:
    # Given an upstream that answers every status check 429 with Retry-After: 3600
    limited = {"code": 429, "headers": {"Retry-After": "3600"}, "body": "slow down"}
    upstream.script({"model_id": "limited-model", "status": [limited] * 20})
    import os

    os.environ["JOB_DEADLINE_SECONDS"] = "4"
    from tests.support.caches import clear_all

    clear_all()
    job_id = submit_job(stack, {"model_id": "limited-model", "prompt": "a fox"})
    # When the execution runs
    execution = wait_for_execution(job_id, stack, timeout=30)
    # Then the hour became a Wait capped by the job's deadline, and the job ended TIMED_OUT
    # (no Lambda slept, none timed out)
    assert execution["status"] == "SUCCEEDED"
    view = response_body(invoke(stack, "job_status", status_event(job_id)))
    assert (view["status"], view["error_code"]) == ("FAILURE", "TIMED_OUT")
    assert not [call for call in invocations if call.get("error")]

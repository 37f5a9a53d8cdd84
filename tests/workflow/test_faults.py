"""Faults, each driven through the fake upstream's magic model ids, on the real state machine:
every accepted job still ends SUCCESS or FAILURE with a reason."""

from __future__ import annotations

import time
from typing import Any

import pytest

from imagegateway.adapters.image_store import ImageStore
from imagegateway.domain.tickets import StoredImage
from local.aws.resources import LocalStack
from local.fake_upstream import FakeUpstream
from tests.support.caches import clear_all
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


def view(stack: LocalStack, job_id: str) -> dict[str, Any]:
    answer: dict[str, Any] = response_body(invoke(stack, "job_status", status_event(job_id)))
    return answer


def calls_to(invocations: list[dict[str, Any]], function: str) -> list[dict[str, Any]]:
    return [call for call in invocations if function in call["function"]]


def test_a_flaky_status_endpoint_is_retried_and_the_job_succeeds(
    stack: LocalStack, upstream: FakeUpstream, invocations: list[dict[str, Any]]
) -> None:
    # Given an upstream whose status endpoint answers 500, then 429, then behaves
    job_id = submit_job(stack, {"model_id": "fake-flaky", "prompt": "a fox"})
    # When the job runs
    execution = wait_for_execution(job_id, stack)
    # Then it ends SUCCESS with its image, the 500 and 429 absorbed by retries with backoff
    assert execution["status"] == "SUCCEEDED"
    assert view(stack, job_id)["status"] == "SUCCESS"
    assert upstream.stats()["status_checks"] == upstream.pending_polls + 3
    assert len(bucket_keys(stack)) == 1


def test_an_upstream_that_never_finishes_times_out_at_the_deadline(
    stack: LocalStack,
    upstream: FakeUpstream,
    invocations: list[dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a 4 s deadline and an upstream that stays PENDING forever
    monkeypatch.setenv("JOB_DEADLINE_SECONDS", "4")
    clear_all()
    started = time.monotonic()
    job_id = submit_job(stack, {"model_id": "fake-never", "prompt": "a fox"})
    # When the job runs
    execution = wait_for_execution(job_id, stack)
    elapsed = time.monotonic() - started
    # Then it ends FAILURE / TIMED_OUT, through the deadline branch, and the execution is over
    assert execution["status"] == "SUCCEEDED"  # the workflow worked; the job failed
    assert "DeadlinePassed" in entered_states(execution_history(job_id, stack))
    answer = view(stack, job_id)
    assert (answer["status"], answer["error_code"]) == ("FAILURE", "TIMED_OUT")
    # And it ended within one poll interval (1 s here) of the deadline, plus task overheads
    assert elapsed < 4 + 1 + 5


def test_images_that_cannot_be_downloaded_fail_the_job_with_no_partial_urls(
    stack: LocalStack, upstream: FakeUpstream, invocations: list[dict[str, Any]]
) -> None:
    # Given an upstream that reports SUCCESS but whose image URLs answer 404
    job_id = submit_job(stack, {"model_id": "fake-broken-image", "prompt": "a fox", "samples": 2})
    # When the job runs
    execution = wait_for_execution(job_id, stack)
    # Then the copy was tried a bounded number of times (1 + 2 retries), then the job failed
    assert execution["status"] == "SUCCEEDED"  # the workflow worked; the job failed
    assert len(calls_to(invocations, "StoreImagesFunction")) == 3
    answer = view(stack, job_id)
    assert (answer["status"], answer["error_code"]) == ("FAILURE", "DOWNLOAD_FAILED")
    # And no URL, and no image, is handed out
    assert "download_urls" not in answer
    assert bucket_keys(stack) == []


class SandboxTimedOut(Exception):
    """Stands for the Lambda runtime killing the function mid-copy."""

    lambda_error_type = "Sandbox.Timedout"


def test_a_copy_that_dies_part_way_is_redone_without_duplicates(
    stack: LocalStack,
    upstream: FakeUpstream,
    invocations: list[dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a store step that dies after copying its first image, the first time only
    real_copy_all = ImageStore.copy_all
    attempts: list[int] = []

    def dying_copy_all(self: ImageStore, job_id: str, urls: list[str]) -> list[StoredImage]:
        attempts.append(1)
        if len(attempts) == 1:
            self.copy_one(job_id, 0, urls[0])
            raise SandboxTimedOut("Task timed out after 180.00 seconds")
        return real_copy_all(self, job_id, urls)

    monkeypatch.setattr(ImageStore, "copy_all", dying_copy_all)
    # When a three-image job runs
    job_id = submit_job(stack, {"model_id": "sd1.5", "prompt": "a fox", "samples": 3})
    execution = wait_for_execution(job_id, stack)
    # Then the retried copy finished the job: exactly three objects, job SUCCESS
    assert execution["status"] == "SUCCEEDED"
    assert len(attempts) == 2
    assert bucket_keys(stack) == [f"jobs/{job_id}/{i}.png" for i in range(3)]
    row = job_row(stack, job_id)
    assert row is not None
    assert row["status"] == "SUCCESS"
    assert len(row["images"]) == 3

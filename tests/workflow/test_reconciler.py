"""The reconciler: no job stays PENDING past its deadline plus the margin."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
import requests

from local.aws_stack import LocalStack
from local.fake_upstream import FakeUpstream
from tests.support.caches import clear_all
from tests.support.events import http_event_with_body, load_event
from tests.support.stack import (
    UPSTREAM_KEY,
    bucket_keys,
    invoke,
    job_row,
    response_body,
    wait_for_execution,
)


def jobs_table(stack: LocalStack) -> Any:
    return boto3.resource("dynamodb", region_name="us-east-1").Table(stack.table_name)


def overdue(stack: LocalStack, job_id: str) -> None:
    """Move the job's deadline well into the past (as if the margin had gone by)."""
    past = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    jobs_table(stack).update_item(
        Key={"job_id": job_id},
        UpdateExpression="SET deadline_at = :past",
        ExpressionAttributeValues={":past": past},
    )


def submit_without_workflow(
    stack: LocalStack, monkeypatch: pytest.MonkeyPatch, body: dict[str, Any]
) -> str:
    """Submit while StartExecution fails: the upstream accepts, the execution never starts."""
    monkeypatch.setenv("STATE_MACHINE_ARN", stack.state_machine_arn + "-missing")
    clear_all()
    response = invoke(stack, "submit", http_event_with_body(body))
    assert response["statusCode"] == 202
    monkeypatch.setenv("STATE_MACHINE_ARN", stack.state_machine_arn)
    clear_all()
    job_id: str = response_body(response)["id"]
    return job_id


def finish_upstream(upstream: FakeUpstream, upstream_id: str) -> None:
    for _ in range(upstream.pending_polls + 1):
        requests.get(
            f"{upstream.base_url}/sd/text2image/v1/status/{upstream_id}",
            headers={"API-Key": UPSTREAM_KEY},
            timeout=5,
        )


def reconcile(stack: LocalStack) -> dict[str, Any]:
    report: dict[str, Any] = invoke(stack, "reconciler", load_event("reconciler"))
    return report


def test_a_job_whose_execution_never_started_is_resumed_and_its_images_stored(
    stack: LocalStack,
    upstream: FakeUpstream,
    invocations: list[dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given the upstream accepted a job but its execution could not be started
    job_id = submit_without_workflow(stack, monkeypatch, {"model_id": "sd1.5", "prompt": "a fox"})
    row = job_row(stack, job_id)
    assert row is not None
    assert row["status"] == "PENDING"
    # And the upstream has since finished it, and the deadline is long past
    finish_upstream(upstream, str(row["upstream_id"]))
    overdue(stack, job_id)
    # When the reconciler runs
    report = reconcile(stack)
    # Then it resumed the job, whose execution stores the paid-for images
    assert report["resumed"] == [job_id]
    assert wait_for_execution(job_id, stack)["status"] == "SUCCEEDED"
    assert job_row(stack, job_id)["status"] == "SUCCESS"  # type: ignore[index]
    assert bucket_keys(stack) == [f"jobs/{job_id}/0.png"]
    assert upstream.stats()["submits"] == 1


def test_a_job_still_pending_upstream_past_its_deadline_is_timed_out(
    stack: LocalStack,
    upstream: FakeUpstream,
    invocations: list[dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    job_id = submit_without_workflow(
        stack, monkeypatch, {"model_id": "fake-never", "prompt": "a fox"}
    )
    overdue(stack, job_id)
    report = reconcile(stack)
    assert report["failed"] == [job_id]
    row = job_row(stack, job_id)
    assert row is not None
    assert (row["status"], row["error_code"]) == ("FAILURE", "TIMED_OUT")


def test_a_job_interrupted_before_the_upstream_answered_is_failed_with_a_reason(
    stack: LocalStack, upstream: FakeUpstream, invocations: list[dict[str, Any]]
) -> None:
    # Given a row whose submit died before the upstream call returned (no upstream id)
    now = datetime.now(UTC)
    jobs_table(stack).put_item(
        Item={
            "job_id": "interrupted-1",
            "owner": "anonymous",
            "status": "PENDING",
            "request": "{}",
            "created_at": (now - timedelta(hours=2)).isoformat(),
            "updated_at": (now - timedelta(hours=2)).isoformat(),
            "deadline_at": (now - timedelta(hours=1)).isoformat(),
            "expires_at": int(now.timestamp()) + 86400,
            "pending": "1",
        }
    )
    # When the reconciler runs
    report = reconcile(stack)
    # Then the job ends FAILURE, telling the caller to submit again
    assert report["failed"] == ["interrupted-1"]
    row = job_row(stack, "interrupted-1")
    assert row is not None
    assert (row["status"], row["error_code"]) == ("FAILURE", "SUBMIT_INTERRUPTED")
    assert upstream.stats()["status_checks"] == 0


def test_jobs_within_their_deadline_and_finished_jobs_are_left_alone(
    stack: LocalStack,
    upstream: FakeUpstream,
    invocations: list[dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a job that just finished and one still within its (short) deadline
    finished = response_body(
        invoke(stack, "submit", http_event_with_body({"model_id": "fake-instant", "prompt": "a"}))
    )["id"]
    assert wait_for_execution(finished, stack)["status"] == "SUCCEEDED"
    overdue(stack, finished)
    monkeypatch.setenv("JOB_DEADLINE_SECONDS", "3")
    clear_all()
    fresh = response_body(
        invoke(stack, "submit", http_event_with_body({"model_id": "fake-never", "prompt": "b"}))
    )["id"]
    # When the reconciler runs
    report = reconcile(stack)
    # Then it finds nothing to do (the finished job left the pending index)
    assert report["examined"] == 0
    assert job_row(stack, fresh)["status"] == "PENDING"  # type: ignore[index]
    # (and the fresh job's own deadline ends it, so no execution outlives the test)
    assert wait_for_execution(fresh, stack)["status"] == "SUCCEEDED"

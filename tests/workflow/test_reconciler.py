"""The reconciler: no job stays PENDING past its deadline plus the margin."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
import requests

from imagegateway.adapters.workflow import Workflow
from local.aws.resources import LocalStack
from local.fake_upstream import FakeUpstream
from tests.support.caches import clear_all
from tests.support.events import http_event_with_body, load_event
from tests.support.stack import (
    UPSTREAM_KEY,
    bucket_keys,
    entered_states,
    execution_history,
    invoke,
    job_row,
    response_body,
    ticket_of,
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
    """Submit as if the function died right after the job's row was written (its execution
    never started), then run only the workflow's SubmitUpstream task: the upstream accepted the
    job, and no execution follows it."""
    with monkeypatch.context() as patched:
        patched.setattr(Workflow, "start", lambda self, ticket, name=None: True)
        response = invoke(stack, "submit", http_event_with_body(body))
    assert response["statusCode"] == 202
    job_id: str = response_body(response)["id"]
    invoke(stack, "submit_upstream", ticket_of(stack, job_id))
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
    # Then it resumed the job, whose execution stores the paid-for images at once
    assert report["resumed"] == [job_id]
    resumed = job_id  # its own execution never started, so the name is free
    assert wait_for_execution(resumed, stack)["status"] == "SUCCEEDED"
    states = entered_states(execution_history(resumed, stack))
    assert states == ["SubmitUpstream", "RouteSubmitAnswer", "StoreImages"]
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


def stale_row(job_id: str, **extra: Any) -> dict[str, Any]:
    now = datetime.now(UTC)
    return {
        "job_id": job_id,
        "owner": "anonymous",
        "status": "PENDING",
        "request": "{}",
        "run_token": "stale-run-token-0123456789",
        "created_at": (now - timedelta(hours=2)).isoformat(),
        "updated_at": (now - timedelta(hours=2)).isoformat(),
        "deadline_at": (now - timedelta(hours=1)).isoformat(),
        "expires_at": int(now.timestamp()) + 86400,
        "pending": "1",
        **extra,
    }


def test_a_job_never_sent_upstream_is_failed_as_not_submitted(
    stack: LocalStack, upstream: FakeUpstream, invocations: list[dict[str, Any]]
) -> None:
    # Given a row whose workflow never sent it (no claim, no upstream id)
    jobs_table(stack).put_item(Item=stale_row("never-sent-1"))
    # When the reconciler runs
    report = reconcile(stack)
    # Then the job ends FAILURE, telling the caller nothing was charged
    assert report["failed"] == ["never-sent-1"]
    row = job_row(stack, "never-sent-1")
    assert row is not None
    assert (row["status"], row["error_code"]) == ("FAILURE", "NOT_SUBMITTED")
    assert upstream.stats()["status_checks"] == 0


def test_a_job_interrupted_while_sending_is_failed_as_maybe_charged(
    stack: LocalStack, upstream: FakeUpstream, invocations: list[dict[str, Any]]
) -> None:
    # Given a row whose SubmitUpstream claimed the POST and died (no upstream id)
    claimed = (datetime.now(UTC) - timedelta(hours=2)).isoformat()
    jobs_table(stack).put_item(Item=stale_row("interrupted-1", submit_started_at=claimed))
    # When the reconciler runs
    report = reconcile(stack)
    # Then the job ends FAILURE with the code that says the upstream may hold it
    assert report["failed"] == ["interrupted-1"]
    row = job_row(stack, "interrupted-1")
    assert row is not None
    assert (row["status"], row["error_code"]) == ("FAILURE", "UPSTREAM_OUTCOME_UNKNOWN")
    assert upstream.stats()["submits"] == 0


def test_one_bad_job_does_not_stop_the_others_and_ends_after_bounded_runs(
    stack: LocalStack,
    upstream: FakeUpstream,
    invocations: list[dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given, oldest first, a malformed row and a job whose DescribeExecution is throttled,
    # then a healthy overdue job
    jobs_table(stack).put_item(Item={**stale_row("malformed-1"), "created_at": "not a date"})
    jobs_table(stack).put_item(
        Item=stale_row(
            "throttled-1", deadline_at=(datetime.now(UTC) - timedelta(minutes=50)).isoformat()
        )
    )
    jobs_table(stack).put_item(
        Item=stale_row(
            "healthy-1", deadline_at=(datetime.now(UTC) - timedelta(minutes=40)).isoformat()
        )
    )
    from botocore.exceptions import ClientError

    from imagegateway.adapters.workflow import Workflow

    real_status = Workflow.status

    def throttled(self: Workflow, name: str) -> str | None:
        if name.startswith("throttled-1"):
            raise ClientError(
                {"Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"}},
                "DescribeExecution",
            )
        return real_status(self, name)

    monkeypatch.setattr(Workflow, "status", throttled)
    # When the reconciler runs
    report = reconcile(stack)
    # Then the healthy job is handled; the other two are counted, not fatal
    assert report["failed"] == ["healthy-1"]
    assert sorted(report["errors"]) == ["malformed-1", "throttled-1"]
    # And after the bounded number of runs (5) the ones that keep failing are ended
    for _ in range(4):
        report = reconcile(stack)
    assert sorted(report["failed"]) == ["malformed-1", "throttled-1"]
    for job_id in ("malformed-1", "throttled-1"):
        row = job_row(stack, job_id)
        assert row is not None
        assert (row["status"], row["error_code"]) == ("FAILURE", "RECONCILE_FAILED")
    assert reconcile(stack)["examined"] == 0


def test_an_upstream_listing_more_images_than_asked_does_not_stop_the_reconciler(
    stack: LocalStack,
    upstream: FakeUpstream,
    invocations: list[dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given an accepted job whose upstream now reports SUCCESS with 6 URLs for 1 sample
    upstream.script({"model_id": "many-urls", "completes_after_seconds": 0})
    job_id = submit_without_workflow(stack, monkeypatch, {"model_id": "many-urls", "prompt": "a"})
    upstream_id = str(job_row(stack, job_id)["upstream_id"])  # type: ignore[index]
    urls = [f"{upstream.base_url}/images/{upstream_id}/0.png"] + [
        f"{upstream.base_url}/images/{upstream_id}/{n}.png?copy" for n in range(5)
    ]
    ok = {"code": 200, "json": {"status": "SUCCESS", "id": upstream_id, "download_urls": urls}}
    upstream.script({"model_id": "many-urls", "status": [ok], "completes_after_seconds": 0})
    overdue(stack, job_id)
    # When the reconciler runs
    report = reconcile(stack)
    # Then the job is resumed with the one image it asked for
    assert report["resumed"] == [job_id]
    assert wait_for_execution(job_id, stack)["status"] == "SUCCEEDED"
    assert bucket_keys(stack) == [f"jobs/{job_id}/0.png"]


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


def test_a_run_short_of_time_leaves_jobs_to_the_next_run(
    stack: LocalStack, upstream: FakeUpstream, invocations: list[dict[str, Any]]
) -> None:
    # Given two overdue jobs, and a run with only 10 s of its 120 s left
    for job_id in ("late-1", "late-2"):
        jobs_table(stack).put_item(Item=stale_row(job_id))
    from imagegateway.entrypoints.wiring import collaborators
    from imagegateway.platform.time_budget import invocation_budget
    from imagegateway.use_cases.reconcile import reconcile_overdue_jobs

    class AlmostOver:
        def get_remaining_time_in_millis(self) -> int:
            return 10_000

    # When the run goes on
    with invocation_budget(AlmostOver()):
        report = reconcile_overdue_jobs(collaborators())
    # Then it takes no job it may not finish: both are left for the next run, untouched
    assert (report.examined, report.deferred) == (0, 2)
    assert job_row(stack, "late-1")["status"] == "PENDING"  # type: ignore[index]
    # And the next run, with its full time, ends them
    assert sorted(reconcile(stack)["failed"]) == ["late-1", "late-2"]

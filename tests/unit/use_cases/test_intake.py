"""The intake use case, driven with the shared fakes: a recorded job is sent upstream and
handed to its workflow, at most once. No AWS, no sockets."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from imagegateway.domain.base import JobStatus
from imagegateway.domain.errors import (
    RetryLater,
    UpstreamOutcomeUnknownError,
    UpstreamRateLimitedError,
)
from imagegateway.domain.image_requests import UpstreamAnswer
from imagegateway.use_cases.intake import send_and_start
from tests.support.fakes import (
    FakeClock,
    FakeJobStore,
    FakePorts,
    FakeUpstream,
    FakeWorkflow,
    fake_ports,
)

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
TOKEN = "run-token-0123456789abcdef"
REQUEST = {"model_id": "sd1.5", "prompt": "a fox", "samples": 3}


def jobs_with(**row: Any) -> FakeJobStore:
    return FakeJobStore(
        {
            "job_id": "job-1",
            "owner": "pipeline",
            "status": "PENDING",
            "request": REQUEST,
            "run_token": TOKEN,
            "created_at": NOW,
            "updated_at": NOW,
            "deadline_at": NOW + timedelta(minutes=15),
            "expires_at": 0,
            **row,
        }
    )


def running(job_id: str) -> FakeWorkflow:
    """A workflow whose execution of the job is running (the job was handed to it)."""
    return FakeWorkflow({job_id: "RUNNING"})


def deps(jobs: FakeJobStore, workflow: FakeWorkflow, upstream: FakeUpstream) -> FakePorts:
    return fake_ports(jobs=jobs, workflow=workflow, upstream=upstream, clock=FakeClock(NOW))


def test_a_recorded_job_is_sent_once_then_handed_to_its_workflow_past_the_submit() -> None:
    # Given a recorded job the upstream accepts
    jobs, workflow = jobs_with(), FakeWorkflow()
    upstream = FakeUpstream(UpstreamAnswer(status=JobStatus.PENDING, id="u-1"))
    # When the intake sends it
    send_and_start("job-1", deps(jobs, workflow, upstream), retry_seconds=5)
    # Then one POST, and the workflow starts with the upstream id and the images it asked for
    assert upstream.posts == 1
    ((_, ticket),) = workflow.started
    assert (ticket.upstream_id, ticket.expected_images) == ("u-1", 3)


def test_a_redelivery_after_the_start_sends_nothing_and_starts_nothing() -> None:
    jobs, workflow, upstream = jobs_with(upstream_id="u-1"), running("job-1"), FakeUpstream()
    send_and_start("job-1", deps(jobs, workflow, upstream), retry_seconds=5)
    assert (upstream.posts, workflow.started) == (0, [])


def test_a_redelivery_after_a_crash_between_send_and_start_resumes_without_a_post() -> None:
    # Given a job the upstream took, whose workflow never started (the consumer died)
    jobs = jobs_with(upstream_id="u-1", submit_started_at=NOW)
    workflow, upstream = FakeWorkflow(), FakeUpstream()
    # When the message comes back / Then the workflow starts following the upstream's job
    send_and_start("job-1", deps(jobs, workflow, upstream), retry_seconds=5)
    assert upstream.posts == 0
    assert [t.upstream_id for _, t in workflow.started] == ["u-1"]


def test_a_workflow_that_cannot_start_brings_the_message_back_and_its_return_posts_nothing() -> (
    None
):
    # Given a job the upstream takes, whose workflow Step Functions will not start just now
    jobs, upstream = jobs_with(), FakeUpstream(UpstreamAnswer(status=JobStatus.PENDING, id="u-1"))
    # When the intake sends it / Then the message comes back soon, rather than the job waiting
    # for the reconciler past its deadline
    with pytest.raises(RetryLater) as later:
        send_and_start("job-1", deps(jobs, FakeWorkflow(starts=False), upstream), retry_seconds=5)
    assert (later.value.seconds, upstream.posts) == (5, 1)
    # And when it comes back, the workflow starts on the upstream's job with no second POST
    workflow = FakeWorkflow()
    send_and_start("job-1", deps(jobs, workflow, upstream), retry_seconds=5)
    assert upstream.posts == 1
    assert [t.upstream_id for _, t in workflow.started] == ["u-1"]


def test_a_send_in_flight_elsewhere_brings_the_message_back_later_never_a_second_post() -> None:
    jobs, workflow, upstream = jobs_with(submit_started_at=NOW), FakeWorkflow(), FakeUpstream()
    with pytest.raises(RetryLater) as later:
        send_and_start("job-1", deps(jobs, workflow, upstream), retry_seconds=20)
    assert (later.value.seconds, upstream.posts, workflow.started) == (20, 0, [])


def test_an_upstream_429_keeps_the_job_in_the_queue_with_its_retry_after() -> None:
    # Given an upstream refusing the POST (429, Retry-After 30): nothing was taken
    jobs, workflow = jobs_with(), FakeWorkflow()
    upstream = FakeUpstream(UpstreamRateLimitedError("busy", retry_after=30))
    # When the intake sends it / Then the message comes back in 30 s, the claim is released
    with pytest.raises(RetryLater) as later:
        send_and_start("job-1", deps(jobs, workflow, upstream), retry_seconds=5)
    assert later.value.seconds == 30
    assert "submit_started_at" not in jobs.items["job-1"]
    assert workflow.started == []


def test_an_unknown_outcome_is_handed_to_the_workflow_as_the_jobs_failure() -> None:
    # Given an upstream that may have taken the job without saying so (a 502 after the POST)
    jobs, workflow = jobs_with(), FakeWorkflow()
    upstream = FakeUpstream(UpstreamOutcomeUnknownError("the upstream answered 502"))
    # When the intake sends it
    send_and_start("job-1", deps(jobs, workflow, upstream), retry_seconds=5)
    # Then the workflow starts with that failure (it records it and tells the caller)
    ((_, ticket),) = workflow.started
    assert ticket.status is JobStatus.FAILURE
    assert ticket.failure is not None
    assert ticket.failure.code == "UPSTREAM_OUTCOME_UNKNOWN"  # type: ignore[union-attr]
    assert upstream.posts == 1


def test_a_claim_lost_to_a_duplicate_delivery_brings_the_message_back_never_a_failure() -> None:
    # Given two deliveries of one key: this one read the row before the other claimed it
    class ClaimedMeanwhile(FakeJobStore):
        def claim_submit(self, job_id: str, *, run_token: str, now: datetime) -> bool:
            return False  # the other delivery got there first

    jobs = ClaimedMeanwhile(jobs_with().get("job-1"))
    workflow, upstream = FakeWorkflow(), FakeUpstream()
    # When this one tries to send it / Then it comes back later; no POST, no FAILURE started
    with pytest.raises(RetryLater):
        send_and_start("job-1", deps(jobs, workflow, upstream), retry_seconds=5)
    assert (upstream.posts, workflow.started) == (0, [])

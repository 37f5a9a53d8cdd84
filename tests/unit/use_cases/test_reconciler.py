"""The reconciler's outcomes, driven with in-memory collaborators: no moto, no fake upstream,
sockets disabled."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from imagegateway.domain.base import JobKind, JobStatus
from imagegateway.domain.errors import UpstreamUnavailableError
from imagegateway.domain.image_requests import UpstreamAnswer
from imagegateway.use_cases.reconcile import reconcile_overdue_jobs
from tests.support.fakes import (
    FakeClock,
    FakeJobStore,
    FakeNotifier,
    FakePorts,
    FakeUpstream,
    FakeWorkflow,
    fake_ports,
)

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
TOKEN = "run-token-0123456789abcdef"


def row(job_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "job_id": job_id,
        "owner": "arn:aws:iam::123456789012:role/client",
        "kind": "text2image",
        "status": "PENDING",
        "request": '{"model_id": "sd1.5", "prompt": "p"}',
        "run_token": TOKEN,
        "created_at": (NOW - timedelta(hours=2)).isoformat(),
        "updated_at": (NOW - timedelta(hours=2)).isoformat(),
        "deadline_at": (NOW - timedelta(hours=1)).isoformat(),
        "expires_at": 0,
        **extra,
    }


def collaborators(
    jobs: FakeJobStore,
    workflow: FakeWorkflow | None = None,
    upstream: FakeUpstream | None = None,
    notifier: FakeNotifier | None = None,
) -> FakePorts:
    return fake_ports(
        jobs=jobs,
        workflow=workflow,
        upstream=upstream,
        notifier=notifier,
        clock=FakeClock(NOW),
    )


def test_a_finished_job_whose_execution_died_is_resumed_with_its_images() -> None:
    # Given a job the upstream finished, whose execution is gone
    jobs = FakeJobStore(row("done-1", upstream_id="u1"))
    workflow = FakeWorkflow({"done-1": "FAILED"})
    urls = ["https://cdn.imagepipeline.io/u1/0.png"]
    upstream = FakeUpstream(
        statuses={"u1": UpstreamAnswer(status=JobStatus.SUCCESS, download_urls=urls)}
    )
    # When the reconciler runs
    report = reconcile_overdue_jobs(collaborators(jobs, workflow, upstream))
    # Then it resumes it under the resume name, with the job's own run token and kind
    assert report.resumed == ["done-1"]
    ((name, ticket),) = workflow.started
    assert (name, ticket.run_token, ticket.download_urls) == ("done-1-resume", TOKEN, urls)
    assert upstream.asked == [(JobKind.TEXT2IMAGE, "u1")]


def test_a_job_still_pending_upstream_is_timed_out() -> None:
    jobs = FakeJobStore(row("slow-1", upstream_id="u2"))
    upstream = FakeUpstream(statuses={"u2": UpstreamAnswer(status=JobStatus.PENDING, id="u2")})
    report = reconcile_overdue_jobs(collaborators(jobs, upstream=upstream))
    assert report.failed == ["slow-1"]
    assert jobs.failed == {"slow-1": "TIMED_OUT"}


def test_a_job_never_sent_is_not_submitted_and_one_being_sent_is_maybe_charged() -> None:
    jobs = FakeJobStore(
        row("never-1"), row("claimed-1", submit_started_at=(NOW - timedelta(hours=2)).isoformat())
    )
    report = reconcile_overdue_jobs(collaborators(jobs))
    assert sorted(report.failed) == ["claimed-1", "never-1"]
    assert jobs.failed == {"never-1": "NOT_SUBMITTED", "claimed-1": "UPSTREAM_OUTCOME_UNKNOWN"}


def test_a_running_execution_is_left_alone() -> None:
    jobs = FakeJobStore(row("running-1", upstream_id="u3"))
    report = reconcile_overdue_jobs(collaborators(jobs, FakeWorkflow({"running-1": "RUNNING"})))
    assert report.left_running == ["running-1"]
    assert jobs.failed == {}


def test_an_unreachable_upstream_is_retried_later_then_given_up_after_a_day() -> None:
    unreachable = FakeUpstream(statuses={"u4": UpstreamUnavailableError("down")})
    recent = FakeJobStore(row("recent-1", upstream_id="u4"))
    assert reconcile_overdue_jobs(collaborators(recent, upstream=unreachable)).retry_later == [
        "recent-1"
    ]
    old = FakeJobStore(
        row("old-1", upstream_id="u4", deadline_at=(NOW - timedelta(days=2)).isoformat())
    )
    assert reconcile_overdue_jobs(collaborators(old, upstream=unreachable)).failed == ["old-1"]
    assert old.failed == {"old-1": "UPSTREAM_UNAVAILABLE"}


@pytest.mark.parametrize("runs_before_giving_up", [5])
def test_a_job_that_keeps_failing_is_isolated_then_ended(runs_before_giving_up: int) -> None:
    # Given a malformed row, a throttled DescribeExecution, and a healthy overdue job
    jobs = FakeJobStore(
        {**row("malformed-1"), "created_at": "not a date"},
        row("throttled-1"),
        row("healthy-1"),
    )
    workflow = FakeWorkflow({"throttled-1": RuntimeError("Rate exceeded")})
    deps = collaborators(jobs, workflow)
    # When the reconciler runs
    report = reconcile_overdue_jobs(deps)
    # Then the healthy job is handled, the other two only counted
    assert report.failed == ["healthy-1"]
    assert sorted(report.errors) == ["malformed-1", "throttled-1"]
    # And after the bounded number of runs they are ended
    for _ in range(runs_before_giving_up - 1):
        report = reconcile_overdue_jobs(deps)
    assert sorted(report.failed) == ["malformed-1", "throttled-1"]
    assert jobs.failed["malformed-1"] == jobs.failed["throttled-1"] == "RECONCILE_FAILED"


def test_a_job_the_reconciler_ends_tells_its_caller_like_the_workflow_would() -> None:
    # Given an overdue job never sent upstream, whose caller gave a reference, a task token
    # and a webhook
    callbacks = {"reference": "order-42", "task_token": "tok", "webhook_url": "https://h.test/w"}
    jobs = FakeJobStore(row("lost-1", callbacks=callbacks))
    notifier = FakeNotifier()
    # When the reconciler ends it
    reconcile_overdue_jobs(collaborators(jobs, notifier=notifier))
    # Then one Failed completion goes on the bus, to the waiting task and to the webhook
    assert jobs.failed == {"lost-1": "NOT_SUBMITTED"}
    (published,) = notifier.published
    assert published.detail_type == "Image Generation Failed"
    assert (published.detail.reference, published.detail.error_code) == (
        "order-42",
        "NOT_SUBMITTED",
    )
    assert notifier.answered == [("tok", published)]
    assert notifier.webhooks == [("https://h.test/w", published)]


# --------------------------------------------------------------------------- Express executions


class UndescribableWorkflow(FakeWorkflow):
    """Express: DescribeExecution refuses every execution (AWS does)."""

    def status(self, name: str) -> str | None:
        raise AssertionError("an Express execution cannot be described")


def test_an_express_job_is_left_alone_while_an_execution_could_still_run() -> None:
    # Given an Express job whose deadline passed 4 minutes ago (a hand-over just before it
    # may still run, up to 5 minutes)
    jobs = FakeJobStore(
        row("x-1", upstream_id="u1", deadline_at=(NOW - timedelta(minutes=4)).isoformat())
    )
    workflow = UndescribableWorkflow(express=True)
    # When the reconciler runs / Then it waits, without asking Step Functions or the upstream
    report = reconcile_overdue_jobs(collaborators(jobs, workflow))
    assert report.left_running == ["x-1"]


def test_an_express_job_past_any_executions_life_is_resumed_once_per_run() -> None:
    # Given an Express job finished upstream, its deadline an hour ago
    jobs = FakeJobStore(row("x-2", upstream_id="u1"))
    workflow = UndescribableWorkflow(express=True)
    urls = ["https://cdn.imagepipeline.io/u1/0.png"]
    upstream = FakeUpstream(
        statuses={"u1": UpstreamAnswer(status=JobStatus.SUCCESS, download_urls=urls)}
    )
    # When the reconciler runs
    report = reconcile_overdue_jobs(collaborators(jobs, workflow, upstream))
    # Then it resumes it under a new name, and notes the resume on the row
    assert report.resumed == ["x-2"]
    ((name, _),) = workflow.started
    assert name.startswith("x-2-resume-")
    assert jobs.get("x-2").updated_at == NOW
    # And the next run, while the resumed execution may still be running, leaves it alone
    again = reconcile_overdue_jobs(collaborators(jobs, workflow, upstream))
    assert again.left_running == ["x-2"]
    assert len(workflow.started) == 1

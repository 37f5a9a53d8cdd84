"""No 17-minute window (issue #21, finding 5): a job whose row was written but whose workflow never
started (the submit died between the row and StartExecution) is started by the reconciler's
next run past `start_grace_seconds`, or ended and told if Step Functions will not start it;
never a second upstream POST. In memory, no AWS."""

from __future__ import annotations

from datetime import timedelta

from imagegateway.domain.base import JobStatus
from imagegateway.domain.image_requests import UpstreamAnswer
from imagegateway.use_cases.reconcile import reconcile_jobs
from imagegateway.use_cases.steps.send_job import send_job
from tests.support.fakes import FakeClock, FakeJobStore, FakePorts, FakeUpstream, FakeWorkflow
from tests.unit.use_cases.test_one_ending import IMAGES, NOW, OWNER, ports, row, ticket


def advance(deps: FakePorts, seconds: float) -> None:
    assert isinstance(deps.clock, FakeClock)
    deps.clock.advance(seconds)


def day_count(deps: FakePorts) -> int:
    return deps.usage.days[(OWNER, NOW.date().isoformat())]


def test_a_job_whose_workflow_never_started_is_started_within_two_minutes() -> None:
    # Given a job row written at NOW whose submit died before StartExecution
    deps = ports(FakeJobStore(row()), express=False)
    # When the reconciler runs every minute
    started_at = None
    for minute in range(1, 4):
        advance(deps, 60)
        report = reconcile_jobs(deps)
        if report.started and started_at is None:
            started_at = minute
    # Then it was started once, within two minutes, with the job's own ticket
    assert started_at is not None
    assert started_at <= 2
    assert [name for name, _ in deps.workflow.started] == ["job-1"]
    started = deps.workflow.started[0][1]
    assert (started.job_id, started.run_token, started.expected_images) == (
        "job-1",
        ticket().run_token,
        IMAGES,
    )
    # And nothing was sent upstream by the reconciler (the started workflow sends it, once)
    assert deps.upstream.posts == 0


def test_a_job_that_cannot_be_started_is_ended_told_and_given_back() -> None:
    # Given a job whose workflow never started, and Step Functions refusing every start
    deps = ports(FakeJobStore(row()), workflow=FakeWorkflow(starts=False), express=False)
    # When the reconciler runs past the grace
    advance(deps, deps.settings.start_grace_seconds + 1)
    reconcile_jobs(deps)
    # Then the job ended WORKFLOW_NOT_STARTED, its caller was told, its images given back
    record = deps.jobs.get("job-1")
    assert (record.status, record.error_code) == (JobStatus.FAILURE, "WORKFLOW_NOT_STARTED")
    assert [c.detail.error_code for c in deps.notifier.published] == ["WORKFLOW_NOT_STARTED"]
    assert len(deps.notifier.answered) == len(deps.notifier.webhooks) == 1
    assert day_count(deps) == 0


def test_a_job_a_run_reached_is_left_to_it() -> None:
    # Given a job whose workflow's first step claimed its submit (then waited: a 429 upstream)
    deps = ports(FakeJobStore(row()), express=True)
    deps.jobs.claim_submit("job-1", run_token=ticket().run_token, now=NOW)
    deps.jobs.release_submit("job-1")
    # When the reconciler runs a few minutes on
    for _ in range(3):
        advance(deps, 60)
        reconcile_jobs(deps)
    # Then nothing is started a second time
    assert deps.workflow.started == []


def test_a_late_started_job_is_started_once_even_if_that_run_dies_too() -> None:
    # Given an Express job started late by the reconciler, whose new execution dies unseen
    deps = ports(FakeJobStore(row()), express=True)
    advance(deps, deps.settings.start_grace_seconds + 1)
    reconcile_jobs(deps)
    # When later runs come, before the deadline
    for _ in range(5):
        advance(deps, 60)
        reconcile_jobs(deps)
    # Then it was started once: its deadline (the overdue path) ends it if that run died
    assert len(deps.workflow.started) == 1


def test_a_started_job_goes_on_to_one_post() -> None:
    # Given a job started late by the reconciler
    upstream = FakeUpstream(UpstreamAnswer(id="up-1", status=JobStatus.PENDING))
    deps = ports(FakeJobStore(row()), upstream=upstream, express=False)
    advance(deps, deps.settings.start_grace_seconds + 1)
    reconcile_jobs(deps)
    started = deps.workflow.started[0][1]
    # When its workflow's first step runs, and runs again (a duplicate)
    send_job(started, deps)
    send_job(started, deps)
    # Then one POST was sent
    assert deps.upstream.posts == 1


def test_a_job_within_the_grace_is_left_alone() -> None:
    # Given a job whose row was just written (its workflow is starting)
    deps = ports(FakeJobStore(row()), express=False)
    # When the reconciler runs within the grace
    advance(deps, deps.settings.start_grace_seconds - 5)
    reconcile_jobs(deps)
    # Then it is not started by the reconciler
    assert deps.workflow.started == []
    assert deps.jobs.get("job-1").deadline_at - NOW == timedelta(minutes=15)

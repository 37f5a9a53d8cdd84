"""The submit task in Express executions: it starts each execution's hand-over clock, hands a
job over when a put-off submit would wait past it, and a new execution keeps that wait. In-memory
collaborators, no sockets."""

from __future__ import annotations

from datetime import timedelta
from typing import cast

from imagegateway.adapters.image_store import ImageStore
from imagegateway.adapters.job_store import JobStore
from imagegateway.adapters.notifier import Notifier
from imagegateway.adapters.upstream_client import UpstreamClient
from imagegateway.adapters.workflow import Workflow
from imagegateway.domain.base import JobStatus
from imagegateway.domain.errors import UpstreamRateLimitedError
from imagegateway.domain.image_requests import UpstreamAnswer
from imagegateway.domain.tickets import JobTicket
from imagegateway.entrypoints.wiring import Collaborators
from imagegateway.platform.settings import Settings
from imagegateway.use_cases.steps.send_job import send_job
from tests.unit.entrypoints.test_intake import NOW, TOKEN, FakeJobs, FakeUpstream


def deps(jobs: FakeJobs, upstream: FakeUpstream, *, workflow_type: str) -> Collaborators:
    settings = Settings.model_validate(
        {"jobs_table_name": "jobs", "images_bucket_name": "images", "workflow_type": workflow_type}
    )
    return Collaborators(
        settings=settings,
        jobs=cast(JobStore, jobs),
        upstream=cast(UpstreamClient, upstream),
        images=cast(ImageStore, object()),
        workflow=cast(Workflow, object()),
        notifier=cast(Notifier, object()),
        clock=lambda: NOW,
    )


def first_ticket(**extra: object) -> JobTicket:
    return JobTicket.model_validate(
        {
            "job_id": "job-1",
            "run_token": TOKEN,
            "status": "PENDING",
            "wait_seconds": 1,
            "deadline_at": NOW + timedelta(minutes=15),
            **extra,
        }
    )


def test_an_express_execution_starts_its_hand_over_clock_at_its_first_task() -> None:
    # Given a new job in an Express and in a Standard workflow
    for workflow_type, expected in (("EXPRESS", NOW), ("STANDARD", None)):
        upstream = FakeUpstream(UpstreamAnswer(status=JobStatus.PENDING, id="u-1"))
        # When its first task sends it
        sent = send_job(first_ticket(), deps(FakeJobs(), upstream, workflow_type=workflow_type))
        # Then only the Express execution has a clock
        assert (sent.upstream_id, sent.execution_started_at) == ("u-1", expected)


def test_a_put_off_submit_past_the_hand_over_goes_on_in_a_new_execution() -> None:
    # Given an Express execution 100 s old, and an upstream that asks for 60 s
    jobs = FakeJobs()
    upstream = FakeUpstream(UpstreamRateLimitedError("busy", retry_after=60))
    ticket = first_ticket(execution_started_at=NOW - timedelta(seconds=100))
    # When the task tries to send the job
    later = send_job(ticket, deps(jobs, upstream, workflow_type="EXPRESS"))
    # Then nothing was claimed, and the job is handed over, to be sent no sooner than asked
    assert "submit_started_at" not in jobs.row
    assert (later.status, later.hand_over, later.execution_started_at) == (
        JobStatus.PENDING,
        True,
        None,
    )
    assert later.submit_not_before == NOW + timedelta(seconds=60)


def test_a_new_execution_keeps_the_wait_it_was_handed_without_posting() -> None:
    # Given a handed-over ticket whose submit may happen 40 s from now
    upstream = FakeUpstream()
    ticket = first_ticket(hand_over=True, submit_not_before=NOW + timedelta(seconds=40))
    # When the new execution's first task runs
    waiting = send_job(ticket, deps(FakeJobs(), upstream, workflow_type="EXPRESS"))
    # Then no POST: it waits the rest, on a fresh clock
    assert upstream.posts == 0
    assert (waiting.status, waiting.wait_seconds, waiting.hand_over) == (
        JobStatus.PENDING,
        40,
        False,
    )
    assert waiting.execution_started_at == NOW


def test_a_job_handed_over_while_followed_goes_back_to_its_checks() -> None:
    # Given a job the upstream accepted, handed over by the status loop
    upstream = FakeUpstream()
    ticket = first_ticket(upstream_id="u-1", hand_over=True, hand_overs=1)
    jobs = FakeJobs(upstream_id="u-1")
    # When the new execution's first task runs
    resumed = send_job(ticket, deps(jobs, upstream, workflow_type="EXPRESS"))
    # Then it is not sent again: PENDING with its upstream id, a check a second away
    assert upstream.posts == 0
    assert (resumed.upstream_id, resumed.wait_seconds, resumed.hand_over) == ("u-1", 1, False)
    assert (resumed.execution_started_at, resumed.hand_overs) == (NOW, 1)

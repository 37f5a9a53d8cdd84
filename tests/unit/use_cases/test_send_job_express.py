"""The submit task in Express executions: it starts each execution's hand-over clock, hands a
job over when a put-off submit would wait past it, and a new execution keeps that wait. In-memory
collaborators, no sockets."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from imagegateway.domain.base import JobStatus
from imagegateway.domain.errors import UpstreamRateLimitedError
from imagegateway.domain.image_requests import UpstreamAnswer
from imagegateway.domain.tickets import JobTicket
from imagegateway.platform.settings import Settings
from imagegateway.use_cases.steps.send_job import send_job
from tests.support.fakes import FakeClock, FakeJobStore, FakePorts, FakeUpstream, fake_ports

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
TOKEN = "run-token-0123456789abcdef"


def jobs_with(**row: Any) -> FakeJobStore:
    return FakeJobStore(
        {
            "job_id": "job-1",
            "owner": "pipeline",
            "status": "PENDING",
            "request": {"model_id": "sd1.5", "prompt": "a fox", "samples": 3},
            "run_token": TOKEN,
            "created_at": NOW,
            "updated_at": NOW,
            "deadline_at": NOW + timedelta(minutes=15),
            "expires_at": 0,
            **row,
        }
    )


def deps(jobs: FakeJobStore, upstream: FakeUpstream, *, workflow_type: str) -> FakePorts:
    settings = Settings.model_validate(
        {"jobs_table_name": "jobs", "images_bucket_name": "images", "workflow_type": workflow_type}
    )
    return fake_ports(settings=settings, jobs=jobs, upstream=upstream, clock=FakeClock(NOW))


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
        sent = send_job(first_ticket(), deps(jobs_with(), upstream, workflow_type=workflow_type))
        # Then only the Express execution has a clock
        assert (sent.upstream_id, sent.execution_started_at) == ("u-1", expected)


def test_a_put_off_submit_past_the_hand_over_goes_on_in_a_new_execution() -> None:
    # Given an Express execution 100 s old, and an upstream that asks for 60 s
    jobs = jobs_with()
    upstream = FakeUpstream(UpstreamRateLimitedError("busy", retry_after=60))
    ticket = first_ticket(execution_started_at=NOW - timedelta(seconds=100))
    # When the task tries to send the job
    later = send_job(ticket, deps(jobs, upstream, workflow_type="EXPRESS"))
    # Then nothing was claimed, and the job is handed over, to be sent no sooner than asked
    assert "submit_started_at" not in jobs.items["job-1"]
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
    waiting = send_job(ticket, deps(jobs_with(), upstream, workflow_type="EXPRESS"))
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
    jobs = jobs_with(upstream_id="u-1")
    # When the new execution's first task runs
    resumed = send_job(ticket, deps(jobs, upstream, workflow_type="EXPRESS"))
    # Then it is not sent again: PENDING with its upstream id, a check a second away
    assert upstream.posts == 0
    assert (resumed.upstream_id, resumed.wait_seconds, resumed.hand_over) == ("u-1", 1, False)
    assert (resumed.execution_started_at, resumed.hand_overs) == (NOW, 1)

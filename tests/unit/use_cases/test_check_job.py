"""The status check, driven with a fake clock and a fake upstream: one check per invocation, or
in-function polling every second within a stretch, the deadline and the invocation's time. No
AWS, no sockets, no real sleeping."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from imagegateway.domain.base import JobKind, JobStatus
from imagegateway.domain.errors import JobEndedElsewhereError, UpstreamRateLimitedError
from imagegateway.domain.image_requests import UpstreamAnswer
from imagegateway.domain.tickets import JobTicket
from imagegateway.platform.settings import Settings
from imagegateway.platform.time_budget import invocation_budget
from imagegateway.use_cases.steps.check_job import check_job
from tests.support.fakes import FakeClock, FakeJobStore, FakePorts, FakeUpstream, fake_ports

START = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
TOKEN = "run-token-0123456789abcdef"
URL = "https://cdn.imagepipeline.io/u-1/0.png"


def upstream_done_at(clock: FakeClock, done_after: float | None) -> FakeUpstream:
    """PENDING until `done_after` seconds past START, then SUCCESS; `asked` lists the checks."""

    def status_of(kind: JobKind, upstream_id: str) -> UpstreamAnswer:
        elapsed = (clock.now - START).total_seconds()
        if done_after is not None and elapsed >= done_after:
            return UpstreamAnswer(status=JobStatus.SUCCESS, id=upstream_id, download_urls=[URL])
        return UpstreamAnswer(status=JobStatus.PENDING, id=upstream_id)

    return FakeUpstream(status_of=status_of)


def checking(
    upstream: FakeUpstream,
    clock: FakeClock,
    *,
    stretch: int,
    deadline_in: float = 900,
    cancelled_after: float | None = None,
    **settings_fields: Any,
) -> FakePorts:
    """One job row, PENDING, or cancelled by its caller `cancelled_after` seconds past START."""
    settings = Settings(
        jobs_table_name="jobs",
        images_bucket_name="images",
        upstream_poll_stretch_seconds=stretch,
        **settings_fields,
    )
    jobs = FakeJobStore(
        {
            "job_id": "job-1",
            "owner": "o",
            "status": "PENDING",
            "request": {"model_id": "sd1.5", "prompt": "p"},
            "run_token": TOKEN,
            "upstream_id": "u-1",
            "created_at": START,
            "updated_at": START,
            "deadline_at": START + timedelta(seconds=deadline_in),
            "expires_at": 0,
        }
    )
    if cancelled_after is not None:
        clock.at(
            START + timedelta(seconds=cancelled_after),
            lambda: jobs.mark_cancelled("job-1", message="cancelled", now=clock.now),
        )
    return fake_ports(settings=settings, jobs=jobs, upstream=upstream, clock=clock)


def pending_ticket(deadline_in: float = 900) -> JobTicket:
    return JobTicket(
        job_id="job-1",
        run_token=TOKEN,
        upstream_id="u-1",
        status=JobStatus.PENDING,
        wait_seconds=1,
        deadline_at=START + timedelta(seconds=deadline_in),
    )


def run_check(
    *, done_after: float | None, stretch: int, deadline_in: float = 900
) -> tuple[JobTicket, FakeUpstream, FakeClock]:
    clock = FakeClock(START)
    upstream = upstream_done_at(clock, done_after)
    deps = checking(upstream, clock, stretch=stretch, deadline_in=deadline_in)
    checked = check_job(pending_ticket(deadline_in), deps)
    return checked, upstream, clock


def test_without_a_stretch_one_check_and_the_state_machine_backs_off() -> None:
    checked, upstream, clock = run_check(done_after=8, stretch=0)
    assert (checked.status, len(upstream.asked), clock.slept) == (JobStatus.PENDING, 1, [])
    assert checked.wait_seconds == 8  # 5 s x 1.5, rounded up: today's backoff


def test_a_stretch_notices_the_end_within_a_second_with_one_check_per_second() -> None:
    # Given an upstream that finishes 8 s after the first check
    checked, upstream, clock = run_check(done_after=8, stretch=100)
    # Then one invocation saw it, at most a second late, asking once a second
    assert checked.status is JobStatus.SUCCESS
    assert checked.download_urls == [URL]
    assert (clock.now - START).total_seconds() == 8
    assert len(upstream.asked) == 9
    assert set(clock.slept) == {1.0}


def test_a_stretch_ends_and_hands_back_to_the_state_machine_for_a_short_wait() -> None:
    checked, upstream, _ = run_check(done_after=None, stretch=10)
    assert checked.status is JobStatus.PENDING
    assert len(upstream.asked) == 11  # at 0, 1, ... 10 s
    assert checked.wait_seconds == 1
    assert checked.polls == 11


def test_a_stretch_never_polls_past_the_jobs_deadline() -> None:
    checked, upstream, clock = run_check(done_after=None, stretch=100, deadline_in=5.5)
    assert checked.status is JobStatus.PENDING
    assert (clock.now - START).total_seconds() <= 5.5
    assert len(upstream.asked) == 6


def test_a_stretch_stops_while_the_invocation_still_has_time_to_answer() -> None:
    # Given an invocation with 3 s left after the entry point's margin: less than a wait plus
    # one more check
    class FiveSeconds:
        def get_remaining_time_in_millis(self) -> int:
            return 5_000

    with invocation_budget(FiveSeconds()):
        checked, upstream, clock = run_check(done_after=None, stretch=100)
    # Then it checks once and hands back rather than sleep into its own timeout
    assert checked.status is JobStatus.PENDING
    assert (len(upstream.asked), clock.slept) == (1, [])


def test_a_rate_limit_during_a_stretch_becomes_the_state_machines_wait() -> None:
    clock = FakeClock(START)

    pending = upstream_done_at(clock, None).status_of
    assert pending is not None

    def limited_after_two(kind: JobKind, upstream_id: str) -> UpstreamAnswer:
        if len(upstream.asked) == 3:  # the third check
            raise UpstreamRateLimitedError("slow down", retry_after=20)
        return pending(kind, upstream_id)

    upstream = FakeUpstream(status_of=limited_after_two)
    deps = checking(upstream, clock, stretch=60)
    ticket = pending_ticket()
    checked = check_job(ticket, deps)
    assert (checked.status, checked.wait_seconds, checked.polls) == (JobStatus.PENDING, 20, 3)


@pytest.mark.parametrize("stretch", [0, 100])
def test_an_upstream_failure_ends_the_loop_with_its_message(stretch: int) -> None:
    clock = FakeClock(START)

    failing = FakeUpstream(
        status_of=lambda kind, upstream_id: UpstreamAnswer(
            status=JobStatus.FAILURE, id=upstream_id, error="NSFW"
        )
    )
    deps = checking(failing, clock, stretch=stretch)
    ticket = pending_ticket()
    checked = check_job(ticket, deps)
    assert checked.status is JobStatus.FAILURE
    assert checked.failure is not None
    assert checked.failure.message == "NSFW"  # type: ignore[union-attr]


# --------------------------------------------------------------------------- ended elsewhere


@pytest.mark.parametrize("stretch", [0, 100])
def test_a_cancelled_job_is_not_checked_and_its_execution_ends_quietly(stretch: int) -> None:
    # Given a job cancelled before its check (an Express execution cannot be stopped)
    clock = FakeClock(START)
    upstream = upstream_done_at(clock, done_after=0)
    deps = checking(upstream, clock, stretch=stretch, cancelled_after=0)
    # When the workflow checks it / Then the task refuses, and the upstream is not asked
    with pytest.raises(JobEndedElsewhereError):
        check_job(pending_ticket(), deps)
    assert len(upstream.asked) == 0


def test_a_job_cancelled_during_a_stretch_is_not_reported_done() -> None:
    # Given a stretch during which the caller cancels, then the upstream finishes
    clock = FakeClock(START)
    upstream = upstream_done_at(clock, done_after=8)
    deps = checking(upstream, clock, stretch=100, cancelled_after=5)
    # When the check ends / Then it does not hand a SUCCESS on to the store step
    with pytest.raises(JobEndedElsewhereError):
        check_job(pending_ticket(), deps)


def test_a_job_cancelled_during_a_stretch_stops_being_polled_within_ten_seconds() -> None:
    # Given a stretch of 100 s on an upstream that never finishes, cancelled 5 s in
    clock = FakeClock(START)
    upstream = upstream_done_at(clock, done_after=None)
    deps = checking(upstream, clock, stretch=100, cancelled_after=5)
    # When the check runs / Then it notices at its next look at the row (every 10 s), not at
    # the end of the stretch: the invocation and the upstream calls stop there
    with pytest.raises(JobEndedElsewhereError):
        check_job(pending_ticket(), deps)
    assert (clock.now - START).total_seconds() <= 10
    assert len(upstream.asked) <= 11


# --------------------------------------------------------------------------- Express hand-over


def express_ticket(started_seconds_ago: float) -> JobTicket:
    ticket = pending_ticket()
    return ticket.model_copy(
        update={"execution_started_at": START - timedelta(seconds=started_seconds_ago)}
    )


def test_an_express_execution_hands_the_job_over_before_its_five_minutes() -> None:
    # Given an Express execution 149.5 s old (hand-over at 150 s), the job still PENDING
    clock = FakeClock(START)
    deps = checking(upstream_done_at(clock, None), clock, stretch=0, workflow_type="EXPRESS")
    # When it checks the job, whose next check would come after the hand-over time
    checked = check_job(express_ticket(149.5), deps)
    # Then the ticket asks for a new execution, whose first task starts the clock again
    assert (checked.status, checked.hand_over, checked.hand_overs) == (JobStatus.PENDING, True, 1)
    assert checked.execution_started_at is None


def test_a_young_express_execution_keeps_the_job() -> None:
    clock = FakeClock(START)
    deps = checking(upstream_done_at(clock, None), clock, stretch=0, workflow_type="EXPRESS")
    checked = check_job(express_ticket(10), deps)
    assert (checked.hand_over, checked.execution_started_at) == (
        False,
        START - timedelta(seconds=10),
    )


def test_a_finished_job_is_never_handed_over() -> None:
    # Given an old Express execution whose job the upstream just finished
    clock = FakeClock(START)
    deps = checking(upstream_done_at(clock, 0), clock, stretch=0, workflow_type="EXPRESS")
    # When it checks / Then it stores the images itself
    checked = check_job(express_ticket(149.5), deps)
    assert (checked.status, checked.hand_over) == (JobStatus.SUCCESS, False)


def test_a_stretch_in_an_express_execution_stops_at_the_hand_over_time() -> None:
    # Given in-function polling in an Express execution 140 s old
    clock = FakeClock(START)
    upstream = upstream_done_at(clock, None)
    deps = checking(upstream, clock, stretch=100, workflow_type="EXPRESS")
    # When it checks a job that does not finish
    checked = check_job(express_ticket(140), deps)
    # Then it polled only up to the hand-over time, and hands the job over
    assert clock.now - START <= timedelta(seconds=10)
    assert (checked.hand_over, checked.status) == (True, JobStatus.PENDING)

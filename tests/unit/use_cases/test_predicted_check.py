"""The predicted first check, driven through the workflow's three tasks (send, check, store) with a
fake clock and an upstream that takes a fixed time per job: a learned shape is asked first when
it can be done and seen within a second with at most 3 status GETs; an unseen, stale or noisy
shape keeps today's schedule; the deadline and the instant upstream's fast path are untouched;
a broken durations table fails nothing. No AWS, no sockets, no real sleeping."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from imagegateway.domain.base import JobKind, JobStatus
from imagegateway.domain.image_requests import UpstreamAnswer
from imagegateway.domain.tickets import JobTicket
from imagegateway.domain.upstream_durations import (
    DurationSample,
    estimate_of,
    job_shape,
    sample_of,
)
from imagegateway.platform.settings import Settings
from imagegateway.use_cases.steps.check_job import check_job
from imagegateway.use_cases.steps.send_job import send_job
from imagegateway.use_cases.steps.store_job import store_job
from imagegateway.use_cases.view_job import view_of
from tests.support.fakes import (
    FakeClock,
    FakeJobStore,
    FakePorts,
    FakeUpstream,
    FakeUpstreamDurations,
    fake_ports,
)

START = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
TOKEN = "run-token-0123456789abcdef"
URL = "https://cdn.imagepipeline.io/u/0.png"
REQUEST = {"model_id": "sd1.5", "prompt": "a fox", "num_inference_steps": 30}


@dataclass
class TimedUpstream:
    """Each job takes `seconds[model_id]` from its POST; counts the status GETs per job."""

    clock: FakeClock
    seconds: dict[str, float]
    submitted_at: dict[str, tuple[datetime, float]] = field(default_factory=dict)
    gets: dict[str, int] = field(default_factory=dict)

    def fake(self) -> FakeUpstream:
        upstream = FakeUpstream(status_of=self.status_of)
        upstream.submit = self.submit  # type: ignore[method-assign]
        return upstream

    def submit(self, kind: JobKind, body: dict[str, Any]) -> UpstreamAnswer:
        upstream_id = f"u-{len(self.submitted_at) + 1}"
        took = self.seconds[body["model_id"]]
        self.submitted_at[upstream_id] = (self.clock.now, took)
        if took == 0:
            return UpstreamAnswer(status=JobStatus.SUCCESS, id=upstream_id, download_urls=[URL])
        return UpstreamAnswer(status=JobStatus.PENDING, id=upstream_id)

    def status_of(self, kind: JobKind, upstream_id: str) -> UpstreamAnswer:
        self.gets[upstream_id] = self.gets.get(upstream_id, 0) + 1
        if self.clock.now >= self.done_at(upstream_id):
            return UpstreamAnswer(status=JobStatus.SUCCESS, id=upstream_id, download_urls=[URL])
        return UpstreamAnswer(status=JobStatus.PENDING, id=upstream_id)

    def done_at(self, upstream_id: str) -> datetime:
        submitted, took = self.submitted_at[upstream_id]
        return submitted + timedelta(seconds=took)


def world(
    seconds: dict[str, float],
    *,
    workflow_type: str = "STANDARD",
    durations: FakeUpstreamDurations | None = None,
    predicted: bool = True,
) -> tuple[FakePorts, TimedUpstream, FakeClock]:
    clock = FakeClock(START)
    upstream = TimedUpstream(clock, seconds)
    settings = Settings.model_validate(
        {
            "jobs_table_name": "jobs",
            "images_bucket_name": "images",
            "workflow_type": workflow_type,
            # The template's: a stretch of 100 s in Standard, single checks in Express.
            "upstream_poll_stretch_seconds": 0 if workflow_type == "EXPRESS" else 100,
            "predicted_first_check": predicted,
        }
    )
    deps = fake_ports(
        settings=settings,
        jobs=FakeJobStore(),
        upstream=upstream.fake(),
        clock=clock,
        durations=durations,
    )
    return deps, upstream, clock


@dataclass
class Followed:
    ticket: JobTicket
    gets: int
    seen_after_done: float  # seconds from the upstream's done to the gateway's SUCCESS
    first_wait: int
    view_eta: datetime | None
    view_estimate: str | None


def run_job(
    deps: FakePorts,
    upstream: TimedUpstream,
    clock: FakeClock,
    *,
    model_id: str = "sd1.5",
    deadline_in: float = 900,
) -> Followed:
    """One job through the state machine's loop: send, wait, check (until not PENDING), store."""
    job_id = f"job-{len(upstream.submitted_at) + 1}"
    record = deps.jobs.create(
        job_id=job_id,
        owner="o",
        kind=JobKind.TEXT2IMAGE,
        request={**REQUEST, "model_id": model_id},
        now=clock.now,
        deadline_at=clock.now + timedelta(seconds=deadline_in),
        run_token=TOKEN,
    )
    ticket = JobTicket(
        job_id=job_id,
        run_token=TOKEN,
        status=JobStatus.PENDING,
        wait_seconds=1,
        deadline_at=record.deadline_at,
    )
    ticket = send_job(ticket, deps)
    first_wait = ticket.wait_seconds
    pending_view = view_of(deps.jobs.get(job_id), deps)
    started = clock.now
    while ticket.status is JobStatus.PENDING and not ticket.deadline_passed:
        if ticket.hand_over:  # Express: HandOver starts a new execution, its first task again
            started = clock.now
            ticket = send_job(ticket, deps)
        clock.advance(ticket.wait_seconds)  # the Wait state
        ticket = check_job(ticket, deps)
        # An Express execution lives 5 minutes: every one hands over well before
        assert ticket.execution_started_at is None or (clock.now - started).total_seconds() < 300
    upstream_id = ticket.upstream_id or ""
    if ticket.status is JobStatus.SUCCESS:
        store_job(ticket, deps)
    seen = ticket.upstream_completed_at or clock.now
    return Followed(
        ticket=ticket,
        gets=upstream.gets.get(upstream_id, 0),
        seen_after_done=(seen - upstream.done_at(upstream_id)).total_seconds(),
        first_wait=first_wait,
        view_eta=pending_view.estimated_done_at,
        view_estimate=pending_view.estimate,
    )


@pytest.mark.parametrize("workflow_type", ["STANDARD", "EXPRESS"])
@pytest.mark.parametrize("seconds", [3.0, 8.4, 15.0, 30.7])
def test_a_learned_shape_is_seen_within_a_second_with_at_most_three_gets(
    workflow_type: str, seconds: float
) -> None:
    # Given an upstream that takes the same time for every job of a shape, and 3 jobs of it done
    deps, upstream, clock = world({"sd1.5": seconds}, workflow_type=workflow_type)
    learning = [run_job(deps, upstream, clock) for _ in range(3)]
    # (today's schedule while unseen: a check a second, about one GET per second)
    assert all(job.view_estimate == "none" for job in learning)
    assert learning[0].gets >= int(seconds)
    # When more jobs of that shape run
    later = [run_job(deps, upstream, clock) for _ in range(4)]
    # Then each is seen within a second of finishing, with at most 3 status GETs
    for job in later:
        assert job.ticket.status is JobStatus.SUCCESS
        assert 0 <= job.seen_after_done < 1.0
        assert job.gets <= 3
        # and its view showed an ETA within a few seconds of the truth
        assert job.view_estimate == "learned"
        assert job.view_eta is not None
        done_at = upstream.done_at(job.ticket.upstream_id or "")
        assert abs((job.view_eta - done_at).total_seconds()) < 2
    # And the check narrows: the last job is seen sooner than the first learning one
    assert later[-1].seen_after_done <= learning[0].seen_after_done


def test_a_long_learned_shape_on_express_hands_over_before_an_executions_five_minutes() -> None:
    # Given a shape the upstream takes 400 s for, learned on an Express machine
    deps, upstream, clock = world({"sd1.5": 400.0}, workflow_type="EXPRESS")
    for _ in range(3):
        run_job(deps, upstream, clock)
    # When another job of it runs
    job = run_job(deps, upstream, clock)
    # Then no execution outlived its hand-over (run_job asserts it), the first wait ended
    # before the hand-over time, and the job was still seen within a second, with 2 GETs
    # and an early one per hand-over (a new execution waits on for the predicted check)
    assert job.first_wait <= 150
    assert job.ticket.status is JobStatus.SUCCESS
    assert job.ticket.hand_overs == 2
    assert 0 <= job.seen_after_done < 1.0
    assert job.gets <= 2 + job.ticket.hand_overs


def test_an_unseen_shape_keeps_todays_schedule() -> None:
    # Given jobs of one shape learned
    deps, upstream, clock = world({"sd1.5": 10.0, "other": 10.0})
    for _ in range(3):
        run_job(deps, upstream, clock)
    # When a job of another shape runs
    job = run_job(deps, upstream, clock, model_id="other")
    # Then it is checked a second after the submit and every second (today's schedule)
    assert (job.first_wait, job.view_estimate, job.view_eta) == (1, "none", None)
    assert job.gets == 10
    assert 0 <= job.seen_after_done < 1.0


def test_the_setting_off_keeps_todays_schedule_for_every_shape() -> None:
    deps, upstream, clock = world({"sd1.5": 10.0}, predicted=False)
    jobs = [run_job(deps, upstream, clock) for _ in range(5)]
    assert all(job.first_wait == 1 and job.gets == 10 for job in jobs)


def test_a_job_slower_than_its_shape_is_still_checked_every_second_until_done() -> None:
    # Given a shape learned at 10 s
    deps, upstream, clock = world({"sd1.5": 10.0})
    for _ in range(3):
        run_job(deps, upstream, clock)
    # When the upstream takes 16 s for the next one
    upstream.seconds["sd1.5"] = 16.0
    job = run_job(deps, upstream, clock)
    # Then it is seen within a second all the same (more GETs, never a later detection)
    assert job.ticket.status is JobStatus.SUCCESS
    assert 0 <= job.seen_after_done < 1.0


def test_an_estimate_past_the_deadline_never_makes_the_job_later_than_its_deadline() -> None:
    # Given a shape learned at 60 s
    deps, upstream, clock = world({"sd1.5": 60.0})
    for _ in range(3):
        run_job(deps, upstream, clock)
    # When a job of it has 20 s before its deadline
    job = run_job(deps, upstream, clock, deadline_in=20)
    # Then its first wait ends at the deadline, and the job ends there, not done
    assert job.first_wait <= 20
    assert job.ticket.deadline_passed
    assert job.ticket.status is JobStatus.PENDING


def test_an_instant_upstream_keeps_its_fast_path() -> None:
    # Given an upstream that answers SUCCESS at the POST, for a learned shape too
    deps, upstream, clock = world({"sd1.5": 0.0})
    jobs = [run_job(deps, upstream, clock) for _ in range(4)]
    # Then no job is ever asked for its status
    assert [job.gets for job in jobs] == [0, 0, 0, 0]
    assert all(job.ticket.status is JobStatus.SUCCESS for job in jobs)


def test_a_broken_durations_table_fails_nothing() -> None:
    # Given durations that cannot be read nor written
    deps, upstream, clock = world({"sd1.5": 5.0}, durations=FakeUpstreamDurations(broken=True))
    # When jobs run
    jobs = [run_job(deps, upstream, clock) for _ in range(4)]
    # Then they all succeed on today's schedule
    assert all(job.ticket.status is JobStatus.SUCCESS and job.first_wait == 1 for job in jobs)


# --------------------------------------------------------------------------- the statistic


def samples(*done_by: float, at: datetime = START) -> list[DurationSample]:
    return [DurationSample(pending_after=max(0, d - 1), done_by=d, at=at) for d in done_by]


def test_few_samples_make_no_estimate() -> None:
    assert estimate_of(samples(10, 10.5), now=START) is None
    assert estimate_of(samples(10, 10.5, 10.2), now=START) is not None


def test_stale_samples_make_no_estimate() -> None:
    old = samples(10, 10.5, 10.2, at=START - timedelta(days=4))
    assert estimate_of(old, now=START) is None


def test_noisy_samples_make_no_estimate() -> None:
    # 10 s to 16 s: wider than 3 s and a quarter of 10 s
    assert estimate_of(samples(10, 16, 12), now=START) is None
    # 40 s to 48 s: within a quarter of 40 s
    assert estimate_of(samples(40, 48, 44), now=START) is not None


def test_the_first_check_is_halfway_between_the_bounds_at_most_a_second_early() -> None:
    # Given jobs still running at 9.6 s and done by 10.0 s
    bounded = [DurationSample(pending_after=9.6, done_by=10.0, at=START)] * 3
    estimate = estimate_of(bounded, now=START)
    # Then the first check is halfway, at 9.8 s, and the ETA is 10 s
    assert estimate is not None
    assert (estimate.first_check_seconds, estimate.done_by) == (pytest.approx(9.8), 10.0)
    # Given only "done by 10 s" known (an instant pending bound)
    loose = estimate_of([DurationSample(pending_after=0, done_by=10, at=START)] * 3, now=START)
    # Then it comes a second before
    assert loose is not None
    assert loose.first_check_seconds == pytest.approx(9.0)


def test_a_sample_is_bounded_by_the_last_pending_check_and_the_success() -> None:
    sample = sample_of(
        accepted_at=START,
        last_pending_at=START + timedelta(seconds=7.5),
        done_at=START + timedelta(seconds=8.25),
    )
    assert (sample.pending_after, sample.done_by) == (7.5, 8.25)


def test_the_shape_is_what_the_upstream_time_depends_on() -> None:
    base = {"model_id": "m", "prompt": "a", "width": 512, "height": 512, "samples": 2}
    same = job_shape(JobKind.TEXT2IMAGE, {**base, "prompt": "other", "seed": 3})
    assert job_shape(JobKind.TEXT2IMAGE, base) == same
    for changed in ({"samples": 1}, {"width": 768}, {"hires": True}, {"lora_models": ["x"]}):
        assert job_shape(JobKind.TEXT2IMAGE, {**base, **changed}) != same
    assert job_shape(JobKind.IMAGE2IMAGE, base) != same

"""A model-based test of one job's endings (issue #21, build item 1): hypothesis interleaves the
caller's cancel, the workflow's steps (each possibly duplicated, a submit's duplicate even while
the first POST is in flight), the reconciler and refused starts, in any order. Whatever the
order: at most one ending is recorded and it is never replaced; once the job has ended it was
told exactly once (one completion event, one task answer, one webhook) with that ending; and the
caller's day counts the job's images unless the job ended without its POST ever being sent, never
below zero. The real use cases over the shared in-memory fakes; no AWS."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from imagegateway.domain.base import JobKind, JobStatus
from imagegateway.domain.errors import (
    JobFinishedError,
    UpstreamOutcomeUnknownError,
    UpstreamUnavailableError,
    WorkflowNotStartedError,
)
from imagegateway.domain.image_requests import UpstreamAnswer
from imagegateway.domain.tickets import JobTicket
from imagegateway.platform.settings import Settings
from imagegateway.use_cases.cancel_job import cancel_job
from imagegateway.use_cases.reconcile import reconcile_jobs
from imagegateway.use_cases.start_job import start_job
from imagegateway.use_cases.steps.check_job import check_job
from imagegateway.use_cases.steps.fail_job import fail_job
from imagegateway.use_cases.steps.send_job import send_job
from imagegateway.use_cases.steps.store_job import store_job
from tests.support.fakes import FakeClock, FakeJobStore, FakeUpstream, FakeWorkflow, fake_ports
from tests.unit.use_cases.test_one_ending import IMAGES, NOW, OWNER, row, run_task, ticket

UPSTREAM_ID = "up-1"
# What the upstream answers a POST with: accepted, refused before it arrived, or an unknown
# outcome (a 5xx after sending).
POST_ANSWERS = ["accepted", "unreachable", "unknown"]
# What the upstream says of the job when asked.
UPSTREAM_STATES = [JobStatus.PENDING, JobStatus.SUCCESS, JobStatus.FAILURE]
# A workflow failure's code, as RecordFailure would record it.
FAILURE_CODES = ["TIMED_OUT", "UPSTREAM_FAILURE", "INTERNAL_ERROR"]
# Things that may happen while a POST is in flight.
MEANWHILE = ["nothing", "duplicate submit", "cancel", "reconcile", "refused start"]

# Rules run in all examples of the last `make test` run (bounded: under 20 s on one core).
EXPLORED = {"examples": 0, "steps": 0, "told_late": 0}


class Upstream(FakeUpstream):
    """The upstream the model scripts: each POST's answer, and the job's state when asked."""

    def __init__(self) -> None:
        super().__init__()
        self.post_answer = "accepted"
        self.state = JobStatus.PENDING
        self.reached = 0  # POSTs that may have reached the upstream (and been charged)
        self.meanwhile: Callable[[], object] = lambda: None

    def submit(self, kind: JobKind, body: dict[str, Any]) -> UpstreamAnswer:
        self.submitted.append((kind, body))
        self.meanwhile()  # while the POST is in flight
        self.meanwhile = lambda: None
        if self.post_answer == "unreachable":
            raise UpstreamUnavailableError("connection refused")
        self.reached += 1
        if self.post_answer == "unknown":
            raise UpstreamOutcomeUnknownError("a 502 after sending")
        return UpstreamAnswer(id=UPSTREAM_ID, status=JobStatus.PENDING)

    def status(self, kind: JobKind, upstream_id: str) -> UpstreamAnswer:
        self.asked.append((kind, upstream_id))
        urls = [f"https://upstream.example/{i}.png" for i in range(IMAGES)]
        if self.state is JobStatus.SUCCESS:
            return UpstreamAnswer(id=upstream_id, status=self.state, download_urls=urls)
        return UpstreamAnswer(id=upstream_id, status=self.state, error="it broke")


class Workflow(FakeWorkflow):
    """Step Functions as the model wants it: whether an execution may still be running."""

    running = False

    def may_be_running(self, job_id: str, *, quiet_since: Any, now: Any) -> bool:
        return self.running


class OneJob(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        EXPLORED["examples"] += 1
        self.clock = FakeClock(NOW)
        self.upstream = Upstream()
        self.workflow = Workflow(express=True)
        config = Settings.model_validate(
            {
                "jobs_table_name": "jobs",
                "images_bucket_name": "images",
                "workflow_type": "EXPRESS",
                "upstream_poll_stretch_seconds": 0,
            }
        )
        self.deps = fake_ports(
            settings=config,
            jobs=FakeJobStore(row()),
            upstream=self.upstream,
            workflow=self.workflow,
            clock=self.clock,
        )
        self.deps.usage.reserve(OWNER, IMAGES, now=NOW)  # the intake's reservation
        self.first_ending: tuple[str, str | None] | None = None

    # -- the workflow's steps, as the state machine routes them

    def _drive(self, task: Callable[[JobTicket, Any], Any], state: JobTicket) -> None:
        EXPLORED["steps"] += 1
        answer = run_task(task, state, self.deps)
        if isinstance(answer, JobTicket) and answer.status is JobStatus.SUCCESS:
            run_task(store_job, answer, self.deps)  # IsJobDone -> StoreImages

    def _ticket(self) -> JobTicket:
        record = self.deps.jobs.get("job-1")
        return ticket(upstream_id=record.upstream_id) if record.upstream_id else ticket()

    def _meanwhile(self, what: str) -> Callable[[], object]:
        actions: dict[str, Callable[[], object]] = {
            "nothing": lambda: None,
            "duplicate submit": lambda: self._drive(send_job, ticket()),
            "cancel": self.cancel,
            "reconcile": self.reconcile,
            "refused start": self.refused_start,
        }
        return actions[what]

    @rule(answer=st.sampled_from(POST_ANSWERS), meanwhile=st.sampled_from(MEANWHILE))
    def submit(self, answer: str, meanwhile: str) -> None:
        self.upstream.post_answer = answer
        self.upstream.meanwhile = self._meanwhile(meanwhile)
        self._drive(send_job, self._ticket())

    @rule(state=st.sampled_from(UPSTREAM_STATES))
    def check(self, state: JobStatus) -> None:
        self.upstream.state = state
        if self.deps.jobs.get("job-1").upstream_id:
            self._drive(check_job, self._ticket())

    @precondition(lambda self: bool(self.deps.jobs.get("job-1").upstream_id))
    @rule()
    def store(self) -> None:
        urls = [f"https://upstream.example/{i}.png" for i in range(IMAGES)]
        self._drive(
            store_job,
            self._ticket().model_copy(update={"status": JobStatus.SUCCESS, "download_urls": urls}),
        )

    @rule(code=st.sampled_from(FAILURE_CODES))
    def fail(self, code: str) -> None:
        failure = {"code": code, "message": "the workflow failed"}
        failing = self._ticket().model_copy(update={"status": JobStatus.FAILURE})
        self._drive(fail_job, JobTicket.model_validate({**failing.to_state(), "failure": failure}))

    @rule()
    def cancel(self) -> None:
        with contextlib.suppress(JobFinishedError):  # a 409 for the caller, nothing told
            cancel_job("job-1", owner=OWNER, deps=self.deps)

    @rule()
    def refused_start(self) -> None:
        self.workflow.starts = False
        try:
            start_job(ticket(), self.deps)
        except WorkflowNotStartedError:
            pass
        finally:
            self.workflow.starts = True

    @rule(running=st.booleans(), state=st.sampled_from(UPSTREAM_STATES))
    def reconcile(self, running: bool = False, state: JobStatus | None = None) -> None:
        self.workflow.running = running
        if state is not None:
            self.upstream.state = state
        margin = timedelta(seconds=self.deps.settings.reconcile_margin_seconds + 1)
        later = self.deps.jobs.get("job-1").deadline_at + margin
        if self.clock.now < later:
            self.clock.advance((later - self.clock.now).total_seconds())
        reconcile_jobs(self.deps)

    @rule(channels=st.sets(st.sampled_from(["event", "task", "webhook"])))
    def outage(self, channels: set[str]) -> None:
        """The bus, Step Functions or the webhook queue refuse calls (none: all are back)."""
        self.deps.notifier.down = set(channels)

    @rule(seconds=st.sampled_from([1, 30, 200]))
    def time_passes(self, seconds: int) -> None:
        self.clock.advance(seconds)

    # -- what must hold whatever the order

    @invariant()
    def one_ending_never_replaced(self) -> None:
        record = self.deps.jobs.get("job-1")
        if record.status is JobStatus.PENDING:
            assert self.first_ending is None
            return
        ending = (record.status.value, record.error_code)
        self.first_ending = self.first_ending or ending
        assert ending == self.first_ending

    @invariant()
    def told_once_with_that_ending(self) -> None:
        notifier = self.deps.notifier
        told = [*notifier.published]
        told += [c for _, c in notifier.answered] + [c for _, c in notifier.webhooks]
        endings = {(c.detail.status.value, c.detail.error_code) for c in told}
        if self.first_ending is None:
            assert told == []
            return
        assert endings <= {self.first_ending}  # nothing yet, during an outage
        counts = (len(notifier.published), len(notifier.answered), len(notifier.webhooks))
        assert max(counts) <= 1

    def teardown(self) -> None:
        """The outages end and the reconciler runs: an ended job's end is all told, once."""
        if self.first_ending is None:
            return
        notifier = self.deps.notifier
        notifier.down = set()
        told_before = len(notifier.published) + len(notifier.answered) + len(notifier.webhooks)
        EXPLORED["told_late"] += told_before < 3
        self.clock.advance(self.deps.settings.tell_grace_seconds + 1)
        reconcile_jobs(self.deps)
        counts = (len(notifier.published), len(notifier.answered), len(notifier.webhooks))
        assert counts == (1, 1, 1)
        assert self.deps.jobs.untold(ended_before=self.clock.now + timedelta(days=1)) == []

    @invariant()
    def the_day_counts_what_may_have_been_charged(self) -> None:
        record = self.deps.jobs.get("job-1")
        never_sent = record.status is JobStatus.FAILURE and not (
            record.submit_started_at or record.upstream_id
        )
        count = self.deps.usage.days[(OWNER, NOW.date().isoformat())]
        assert count >= 0
        assert count == (0 if never_sent else IMAGES)
        assert len(self.deps.usage.given_back) <= 1
        # Never a second POST that may be accepted; a job that may have been charged keeps
        # its images counted.
        assert self.upstream.reached <= 1
        if self.upstream.reached:
            assert not never_sent


OneJob.TestCase.settings = settings(
    max_examples=500,
    stateful_step_count=12,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestOneEndingPerJob = OneJob.TestCase

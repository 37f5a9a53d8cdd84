"""One ending per job (issue #21, findings 2 and 3): every write that ends a job is conditional on
the job not having ended, and only the write that succeeds tells anyone or gives images back.
A duplicated workflow step (Express runs steps at least once) changes nothing. In memory, no AWS.

`run_task` plays the state machine's routing for one task: an error a task raises goes to
RecordFailure (fail_job) with the caught error, as the ASL's Catch does, and JobEndedElsewhereError
ends the execution quietly."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from imagegateway.domain.base import JobKind, JobStatus
from imagegateway.domain.errors import JobEndedElsewhereError
from imagegateway.domain.events import Completion
from imagegateway.domain.image_requests import UpstreamAnswer
from imagegateway.domain.records import Callbacks, JobRecord
from imagegateway.domain.tickets import CaughtError, JobTicket, StoredImage
from imagegateway.platform.settings import Settings
from imagegateway.use_cases.cancel_job import cancel_job
from imagegateway.use_cases.reconcile import reconcile_jobs
from imagegateway.use_cases.steps.fail_job import fail_job
from imagegateway.use_cases.steps.send_job import SUBMIT_IN_FLIGHT_SECONDS, send_job
from imagegateway.use_cases.steps.store_job import store_job
from tests.support.fakes import (
    FakeClock,
    FakeJobStore,
    FakePorts,
    FakeUpstream,
    FakeWorkflow,
    fake_ports,
)

NOW = datetime(2026, 12, 9, 12, 0, tzinfo=UTC)
TOKEN = "run-token-0123456789abcdef"
OWNER = "pipeline"
CALLBACKS = Callbacks(reference="ref-1", task_token="token-1", webhook_url="https://a.example/h")
IMAGES = 2

Ended = object()  # run_task's answer when the execution ended quietly (EndedElsewhere)


def row(**extra: Any) -> dict[str, Any]:
    return {
        "job_id": "job-1",
        "owner": OWNER,
        "kind": "text2image",
        "status": "PENDING",
        "request": {"model_id": "sd1.5", "prompt": "a fox", "samples": IMAGES},
        "run_token": TOKEN,
        "callbacks": CALLBACKS,
        "created_at": NOW,
        "updated_at": NOW,
        "deadline_at": NOW + timedelta(minutes=15),
        "expires_at": 0,
        **extra,
    }


def ports(
    jobs: FakeJobStore,
    *,
    upstream: FakeUpstream | None = None,
    workflow: FakeWorkflow | None = None,
    express: bool = True,
    clock: FakeClock | None = None,
) -> FakePorts:
    settings = Settings.model_validate(
        {
            "jobs_table_name": "jobs",
            "images_bucket_name": "images",
            "workflow_type": "EXPRESS" if express else "STANDARD",
        }
    )
    deps = fake_ports(
        settings=settings,
        jobs=jobs,
        upstream=upstream,
        workflow=workflow or FakeWorkflow(express=express),
        clock=clock or FakeClock(NOW),
    )
    # The intake reserved the job's images against its caller's day.
    deps.usage.reserve(OWNER, IMAGES, now=NOW)
    return deps


def ticket(**extra: Any) -> JobTicket:
    return JobTicket.model_validate(
        {
            "job_id": "job-1",
            "run_token": TOKEN,
            "status": "PENDING",
            "expected_images": IMAGES,
            "wait_seconds": 1,
            "deadline_at": NOW + timedelta(minutes=15),
            **extra,
        }
    )


def run_task(
    task: Callable[[JobTicket, Any], JobTicket | Completion], state: JobTicket, deps: FakePorts
) -> JobTicket | Completion | object:
    """One task as the state machine runs it: an error goes to RecordFailure with the error a
    Catch caught; JobEndedElsewhereError (from the task or RecordFailure) ends it quietly."""
    try:
        answer = task(state, deps)
    except JobEndedElsewhereError:
        return Ended
    except Exception as exc:
        caught = CaughtError(error=type(exc).__name__, cause=json.dumps({"errorMessage": str(exc)}))
        return run_task(fail_job, state.model_copy(update={"failure": caught}), deps)
    if isinstance(answer, JobTicket) and answer.status is JobStatus.FAILURE:
        return run_task(fail_job, answer, deps)  # RouteSubmitAnswer / IsJobDone
    return answer


def endings_told(deps: FakePorts) -> list[str]:
    """Every ending told to the job's caller, as status/code: events, task answers, webhooks."""
    told = list(deps.notifier.published)
    told += [c for _, c in deps.notifier.answered]
    told += [c for _, c in deps.notifier.webhooks]
    return sorted(f"{c.detail.status.value}/{c.detail.error_code}" for c in told)


def day_count(deps: FakePorts) -> int:
    return deps.usage.days[(OWNER, NOW.date().isoformat())]


# --------------------------------------------------------------------------- finding 2


ENDINGS: dict[str, Callable[[FakeJobStore], bool]] = {
    "success": lambda jobs: jobs.mark_succeeded(
        "job-1",
        images=[StoredImage(index=0, key="k", content_type="image/png", size=1, sha256="0" * 64)],
        upstream_completed_at=NOW,
        now=NOW,
    ),
    "failure": lambda jobs: jobs.mark_failed("job-1", code="TIMED_OUT", message="late", now=NOW),
    "cancel": lambda jobs: jobs.mark_cancelled("job-1", message="cancelled", now=NOW),
    "not started": lambda jobs: jobs.mark_not_started(
        "job-1", code="NOT_SUBMITTED", message="never sent", now=NOW
    ),
}


@pytest.mark.parametrize("first", list(ENDINGS))
@pytest.mark.parametrize("second", list(ENDINGS))
def test_once_a_job_has_ended_no_other_ending_is_recorded(first: str, second: str) -> None:
    # Given a job that has ended one way
    jobs = FakeJobStore(row())
    assert ENDINGS[first](jobs)
    ended = dict(jobs.items["job-1"])
    # When any ending is written over it (a late failure, a late success, a cancel...)
    recorded = ENDINGS[second](jobs)
    # Then the write is refused and the row keeps its first ending
    assert not recorded
    assert jobs.items["job-1"] == ended


class CancelledWhileDeciding(FakeWorkflow):
    """The caller's DELETE lands while the reconciler decides on the row it read."""

    deps: FakePorts

    def may_be_running(self, job_id: str, *, quiet_since: datetime, now: datetime) -> bool:
        cancel_job(job_id, owner=OWNER, deps=self.deps)
        return False


def test_a_cancel_that_lands_while_the_reconciler_decides_is_not_overwritten() -> None:
    # Given a job never sent upstream, past its deadline, which the reconciler read
    workflow = CancelledWhileDeciding()
    past = {"deadline_at": NOW - timedelta(hours=1), "created_at": NOW - timedelta(hours=2)}
    deps = ports(FakeJobStore(row(**past)), workflow=workflow, express=False)
    deps.usage.days.clear()
    deps.usage.reserve(OWNER, IMAGES, now=NOW - timedelta(hours=2))
    workflow.deps = deps
    # When the caller cancels it meanwhile, and the reconciler ends it NOT_SUBMITTED
    reconcile_jobs(deps)
    # Then the job stays CANCELLED, its caller is told once (event, task, webhook), and its
    # images are given back once: the day's count is 0, not negative
    assert deps.jobs.failed == {"job-1": "CANCELLED"}
    assert endings_told(deps) == ["FAILURE/CANCELLED"] * 3
    assert deps.usage.given_back == [(OWNER, IMAGES)]
    assert day_count(deps) == 0


class CancelledAfterRead(FakeJobStore):
    """A cancel lands just after a task read the job's row."""

    def for_ticket(self, ticket: JobTicket) -> JobRecord:
        record = super().for_ticket(ticket)
        self.mark_cancelled(ticket.job_id, message="cancelled", now=NOW)
        return record


def test_a_workflow_failure_that_lands_after_a_cancel_is_not_recorded_nor_told() -> None:
    # Given a job whose deadline passed in the workflow, cancelled just after RecordFailure read it
    deps = ports(CancelledAfterRead(row(submit_started_at=NOW, upstream_id="up-1")))
    failing = ticket(
        upstream_id="up-1",
        status="FAILURE",
        failure={"code": "TIMED_OUT", "message": "the job did not finish in time"},
    )
    # When RecordFailure runs
    outcome = run_task(fail_job, failing, deps)
    # Then the execution ends quietly: the cancel stands, nothing more is told
    assert outcome is Ended
    assert deps.jobs.failed == {"job-1": "CANCELLED"}
    assert endings_told(deps) == []


def test_a_late_success_after_a_timeout_is_not_recorded_nor_told() -> None:
    # Given a job the workflow ended TIMED_OUT (its caller was told)
    deps = ports(FakeJobStore(row(submit_started_at=NOW, upstream_id="up-1")))
    timed_out = ticket(
        upstream_id="up-1",
        status="FAILURE",
        failure={"code": "TIMED_OUT", "message": "the job did not finish in time"},
    )
    assert isinstance(run_task(fail_job, timed_out, deps), Completion)
    # When a store of its images runs after all (a duplicate, or a resume)
    done = ticket(
        upstream_id="up-1", status="SUCCESS", download_urls=["https://u/1", "https://u/2"]
    )
    outcome = run_task(store_job, done, deps)
    # Then the first ending stands, told once
    assert outcome is Ended
    assert deps.jobs.failed == {"job-1": "TIMED_OUT"}
    assert endings_told(deps) == ["FAILURE/TIMED_OUT"] * 3  # event, task answer, webhook


# --------------------------------------------------------------------------- finding 3


class InFlight(FakeUpstream):
    """An upstream whose POST takes a while: `meanwhile` runs while it is in flight."""

    meanwhile: Callable[[], object] = staticmethod(lambda: None)

    def submit(self, kind: JobKind, body: dict[str, Any]) -> UpstreamAnswer:
        self.meanwhile()
        return super().submit(kind, body)


def test_a_duplicate_submit_while_the_first_post_is_in_flight_follows_it() -> None:
    # Given an Express job whose submit step runs twice: the duplicate while the first POSTs
    upstream = InFlight(UpstreamAnswer(id="up-1", status=JobStatus.PENDING))
    deps = ports(FakeJobStore(row()), upstream=upstream)
    duplicate: list[object] = []
    upstream.meanwhile = lambda: duplicate.append(run_task(send_job, ticket(), deps))
    # When both run
    first = run_task(send_job, ticket(), deps)
    # Then the duplicate failed nothing: it waits to look again, the job stays PENDING, nothing
    # was told, one POST
    (waiting,) = duplicate
    assert isinstance(waiting, JobTicket)
    assert (waiting.status, waiting.upstream_id) == (JobStatus.PENDING, None)
    assert deps.jobs.get("job-1").status is JobStatus.PENDING
    assert endings_told(deps) == []
    assert upstream.posts == 1
    # And when it looks again, it follows the job the first run sent, like the first run
    assert isinstance(first, JobTicket)
    again = run_task(send_job, waiting, deps)
    assert isinstance(again, JobTicket)
    assert (again.status, again.upstream_id) == (JobStatus.PENDING, "up-1")
    assert first.upstream_id == "up-1"
    assert upstream.posts == 1


def test_a_duplicate_submit_after_the_deadline_still_follows_an_in_flight_post() -> None:
    # Given a job claimed a moment ago by a run still POSTing, and its deadline just passed
    clock = FakeClock(NOW)
    deadline = NOW + timedelta(seconds=5)
    deps = ports(FakeJobStore(row(deadline_at=deadline, submit_started_at=NOW)), clock=clock)
    clock.advance(10)
    # When a duplicate submit step runs
    answer = run_task(send_job, ticket(deadline_at=deadline), deps)
    # Then it does not end the job NOT_SUBMITTED (the POST may be accepted): it looks again
    assert isinstance(answer, JobTicket)
    assert answer.status is JobStatus.PENDING
    assert not answer.deadline_passed
    assert deps.jobs.get("job-1").status is JobStatus.PENDING


def test_a_claim_whose_run_died_ends_the_job_with_an_unknown_outcome_once() -> None:
    # Given a job claimed by a run that died mid-POST (no upstream id, the claim long past any
    # run's life)
    clock = FakeClock(NOW)
    deps = ports(FakeJobStore(row(submit_started_at=NOW)), clock=clock)
    clock.advance(SUBMIT_IN_FLIGHT_SECONDS + 1)
    # When the submit step runs again, twice
    first = run_task(send_job, ticket(), deps)
    second = run_task(send_job, ticket(), deps)
    # Then the job ends UPSTREAM_OUTCOME_UNKNOWN (never a second POST), told once; the images
    # stay counted (the upstream may have charged them)
    assert isinstance(first, Completion)
    assert second is Ended
    assert deps.jobs.failed == {"job-1": "UPSTREAM_OUTCOME_UNKNOWN"}
    assert endings_told(deps) == ["FAILURE/UPSTREAM_OUTCOME_UNKNOWN"] * 3
    assert deps.usage.given_back == []


@pytest.mark.parametrize("express", [True, False])
def test_a_duplicated_store_step_tells_once(express: bool) -> None:
    # Given a job the upstream finished
    deps = ports(FakeJobStore(row(submit_started_at=NOW, upstream_id="up-1")), express=express)
    done = ticket(
        upstream_id="up-1", status="SUCCESS", download_urls=["https://u/1", "https://u/2"]
    )
    # When its store step runs twice
    first, second = run_task(store_job, done, deps), run_task(store_job, done, deps)
    # Then one SUCCESS, told once (event, task, webhook, by the first run: the second ends
    # quietly, telling nothing)
    assert isinstance(first, Completion)
    assert second is Ended
    assert deps.jobs.get("job-1").status is JobStatus.SUCCESS
    assert endings_told(deps) == ["SUCCESS/None"] * 3


@pytest.mark.parametrize("express", [True, False])
def test_a_duplicated_failure_step_tells_once(express: bool) -> None:
    # Given a job the upstream failed
    deps = ports(FakeJobStore(row(submit_started_at=NOW, upstream_id="up-1")), express=express)
    failing = ticket(
        upstream_id="up-1", status="FAILURE", failure={"code": "UPSTREAM_FAILURE", "message": "x"}
    )
    # When RecordFailure runs twice
    first, second = run_task(fail_job, failing, deps), run_task(fail_job, failing, deps)
    # Then one FAILURE, told once
    assert isinstance(first, Completion)
    assert second is Ended
    assert endings_told(deps) == ["FAILURE/UPSTREAM_FAILURE"] * 3

"""Starting a recorded job's workflow, and what happens when Step Functions will not: in-memory
collaborators, no AWS, no sockets."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

import pytest

from imagegateway.adapters.job_store import JobStore
from imagegateway.adapters.notifier import Notifier
from imagegateway.adapters.workflow import Workflow
from imagegateway.domain.base import JobStatus
from imagegateway.domain.errors import JobEndedElsewhereError, WorkflowNotStartedError
from imagegateway.domain.events import Completion
from imagegateway.domain.records import JobRecord
from imagegateway.domain.tickets import CaughtError, JobTicket
from imagegateway.entrypoints.wiring import Collaborators
from imagegateway.platform.settings import Settings
from imagegateway.use_cases.start_job import start_job
from imagegateway.use_cases.steps.fail_job import fail_job

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
TOKEN = "run-token-0123456789abcdef"
TICKET = JobTicket(
    job_id="j-1", run_token=TOKEN, status=JobStatus.PENDING, wait_seconds=1, deadline_at=NOW
)


class Jobs:
    def __init__(self, **row: Any) -> None:
        self.row: dict[str, Any] = {
            "job_id": "j-1",
            "owner": "o",
            "status": "PENDING",
            "request": {"model_id": "sd1.5", "prompt": "p"},
            "run_token": TOKEN,
            "created_at": NOW,
            "updated_at": NOW,
            "deadline_at": NOW,
            "expires_at": 0,
            "callbacks": {"reference": "order-1"},
            **row,
        }
        self.failed: list[str] = []

    def get(self, job_id: str) -> JobRecord:
        return JobRecord.model_validate(self.row)

    def for_ticket(self, ticket: JobTicket) -> JobRecord:
        return self.get(ticket.job_id)

    def mark_not_started(self, job_id: str, *, code: str, message: str, now: datetime) -> bool:
        if self.row["status"] != "PENDING" or self.row.get("submit_started_at"):
            return False
        self.row |= {"status": "FAILURE", "error_code": code, "error_message": message}
        return True

    def mark_failed(self, job_id: str, *, code: str, message: str, now: datetime) -> bool:
        self.failed.append(code)
        return True


class Steps:
    """The workflow (starts or not) and the bus (records what is published)."""

    def __init__(self, *, starts: bool) -> None:
        self.starts = starts
        self.published: list[Completion] = []

    def start(self, ticket: JobTicket, *, name: str | None = None) -> bool:
        return self.starts

    def publish(self, completion: Completion) -> None:
        self.published.append(completion)


def deps(jobs: Jobs, steps: Steps) -> Collaborators:
    # No upstream or image store: these paths must not touch either (one made from the
    # settings would need AWS, and sockets are off).
    settings = Settings(jobs_table_name="jobs", images_bucket_name="images")
    workflow, notifier = cast(Workflow, steps), cast(Notifier, steps)
    return Collaborators(
        settings, jobs=cast(JobStore, jobs), workflow=workflow, notifier=notifier, clock=lambda: NOW
    )


def test_a_started_workflow_leaves_the_job_pending() -> None:
    jobs, steps = Jobs(), Steps(starts=True)
    start_job(TICKET, deps(jobs, steps))
    assert (jobs.row["status"], steps.published) == ("PENDING", [])


def test_a_workflow_that_will_not_start_ends_the_job_at_once_and_tells_its_caller() -> None:
    # Given a job whose execution Step Functions refuses to start
    jobs, steps = Jobs(), Steps(starts=False)
    # When it is started / Then the caller hears why, with the job's id
    with pytest.raises(WorkflowNotStartedError) as refused:
        start_job(TICKET, deps(jobs, steps))
    assert (refused.value.code, refused.value.job_id) == ("WORKFLOW_NOT_STARTED", "j-1")
    # And the job has ended, and its end was put on the bus once, with the caller's reference
    assert (jobs.row["status"], jobs.row["error_code"]) == ("FAILURE", "WORKFLOW_NOT_STARTED")
    (published,) = steps.published
    assert (published.detail.error_code, published.detail.reference) == (
        "WORKFLOW_NOT_STARTED",
        "order-1",
    )


def test_the_caller_hears_why_even_when_the_bus_is_down_too() -> None:
    # Given a refused start, and a bus that refuses the completion event as well
    class BusDown(Steps):
        def publish(self, completion: Completion) -> None:
            raise RuntimeError("events unavailable")

    jobs = Jobs()
    # When the job is started / Then the answer is still the start's refusal (a 503), not a 500
    with pytest.raises(WorkflowNotStartedError):
        start_job(TICKET, deps(jobs, BusDown(starts=False)))
    assert jobs.row["error_code"] == "WORKFLOW_NOT_STARTED"


def test_an_execution_that_started_despite_the_error_keeps_a_job_it_already_claimed() -> None:
    # Given a start that reported an error, but whose execution runs and has claimed the submit
    jobs, steps = Jobs(submit_started_at=NOW), Steps(starts=False)
    # When the submit path looks / Then it leaves the job to that execution
    start_job(TICKET, deps(jobs, steps))
    assert (jobs.row["status"], steps.published) == ("PENDING", [])


def test_an_execution_that_finds_its_job_not_started_ends_quietly() -> None:
    # Given a job ended WORKFLOW_NOT_STARTED whose execution started after all
    jobs = Jobs(status="FAILURE", error_code="WORKFLOW_NOT_STARTED")
    failing = TICKET.model_copy(
        update={"status": JobStatus.FAILURE, "failure": CaughtError(error="X", cause="")}
    )
    # When its failure path runs / Then nothing more is recorded or told
    with pytest.raises(JobEndedElsewhereError):
        fail_job(failing, deps(jobs, Steps(starts=True)))
    assert jobs.failed == []

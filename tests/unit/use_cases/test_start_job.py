"""Starting a recorded job's workflow, and what happens when Step Functions will not: in-memory
collaborators, no AWS, no sockets."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from imagegateway.domain.base import JobStatus
from imagegateway.domain.errors import JobEndedElsewhereError, WorkflowNotStartedError
from imagegateway.domain.events import Completion
from imagegateway.domain.tickets import CaughtError, JobTicket
from imagegateway.use_cases.start_job import start_job
from imagegateway.use_cases.steps.fail_job import fail_job
from tests.support.fakes import (
    FakeClock,
    FakeJobStore,
    FakeNotifier,
    FakePorts,
    FakeWorkflow,
    fake_ports,
)

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
TOKEN = "run-token-0123456789abcdef"
TICKET = JobTicket(
    job_id="j-1", run_token=TOKEN, status=JobStatus.PENDING, wait_seconds=1, deadline_at=NOW
)


def jobs_with(**row: Any) -> FakeJobStore:
    return FakeJobStore(
        {
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
    )


def deps(jobs: FakeJobStore, workflow: FakeWorkflow, notifier: FakeNotifier) -> FakePorts:
    # These paths never call the upstream: its fake has no answer scripted, so a POST or a
    # status check would fail the test.
    return fake_ports(jobs=jobs, workflow=workflow, notifier=notifier, clock=FakeClock(NOW))


def row_of(jobs: FakeJobStore) -> dict[str, Any]:
    return jobs.items["j-1"]


def test_a_started_workflow_leaves_the_job_pending() -> None:
    jobs, workflow, notifier = jobs_with(), FakeWorkflow(), FakeNotifier()
    start_job(TICKET, deps(jobs, workflow, notifier))
    assert (row_of(jobs)["status"], notifier.published) == ("PENDING", [])
    assert [name for name, _ in workflow.started] == ["j-1"]


def test_a_workflow_that_will_not_start_ends_the_job_at_once_and_tells_its_caller() -> None:
    # Given a job whose execution Step Functions refuses to start
    jobs, workflow, notifier = jobs_with(), FakeWorkflow(starts=False), FakeNotifier()
    # When it is started / Then the caller hears why, with the job's id
    with pytest.raises(WorkflowNotStartedError) as refused:
        start_job(TICKET, deps(jobs, workflow, notifier))
    assert (refused.value.code, refused.value.job_id) == ("WORKFLOW_NOT_STARTED", "j-1")
    # And the job has ended, and its end was put on the bus once, with the caller's reference
    assert (row_of(jobs)["status"], row_of(jobs)["error_code"]) == (
        "FAILURE",
        "WORKFLOW_NOT_STARTED",
    )
    (published,) = notifier.published
    assert (published.detail.error_code, published.detail.reference) == (
        "WORKFLOW_NOT_STARTED",
        "order-1",
    )


def test_the_caller_hears_why_even_when_the_bus_is_down_too() -> None:
    # Given a refused start, and a bus that refuses the completion event as well
    class BusDown(FakeNotifier):
        def publish(self, completion: Completion) -> None:
            raise RuntimeError("events unavailable")

    jobs = jobs_with()
    # When the job is started / Then the answer is still the start's refusal (a 503), not a 500
    with pytest.raises(WorkflowNotStartedError):
        start_job(TICKET, deps(jobs, FakeWorkflow(starts=False), BusDown()))
    assert row_of(jobs)["error_code"] == "WORKFLOW_NOT_STARTED"


def test_an_execution_that_started_despite_the_error_keeps_a_job_it_already_claimed() -> None:
    # Given a start that reported an error, but whose execution runs and has claimed the submit
    jobs, notifier = jobs_with(submit_started_at=NOW), FakeNotifier()
    # When the submit path looks / Then it leaves the job to that execution
    start_job(TICKET, deps(jobs, FakeWorkflow(starts=False), notifier))
    assert (row_of(jobs)["status"], notifier.published) == ("PENDING", [])


def test_an_execution_that_finds_its_job_not_started_ends_quietly() -> None:
    # Given a job ended WORKFLOW_NOT_STARTED whose execution started after all
    jobs = jobs_with(status="FAILURE", error_code="WORKFLOW_NOT_STARTED")
    failing = TICKET.model_copy(
        update={"status": JobStatus.FAILURE, "failure": CaughtError(error="X", cause="")}
    )
    ended = dict(jobs.items["j-1"])
    notifier = FakeNotifier()
    # When its failure path runs / Then its conditional ending is refused: nothing more is
    # recorded or told
    with pytest.raises(JobEndedElsewhereError):
        fail_job(failing, deps(jobs, FakeWorkflow(), notifier))
    assert jobs.items["j-1"] == ended
    assert (notifier.published, notifier.answered, notifier.webhooks) == ([], [], [])

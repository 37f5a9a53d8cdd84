"""Cancel and the list's cursor, with in-memory collaborators: no AWS, no sockets."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from imagegateway.domain.errors import InvalidCursorError, JobFinishedError, JobNotFoundError
from imagegateway.use_cases.cancel_job import cancel_job
from imagegateway.use_cases.list_jobs import decode_cursor, encode_cursor
from tests.support.fakes import (
    FakeClock,
    FakeJobStore,
    FakeNotifier,
    FakePorts,
    FakeWorkflow,
    fake_ports,
)

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
OWNER = "arn:aws:iam::123456789012:user/alice"


def test_a_cursor_round_trips_for_its_caller_only() -> None:
    key = {"job_id": "j-1", "owner": OWNER, "created_at": "2026-11-25T12:00:00+00:00"}
    cursor = encode_cursor(OWNER, key)
    assert decode_cursor(OWNER, cursor) == key
    with pytest.raises(InvalidCursorError):
        decode_cursor("arn:aws:iam::123456789012:user/bob", cursor)


@pytest.mark.parametrize("cursor", ["not base64 !", "bm90IGpzb24", "W10"])
def test_a_cursor_the_gateway_did_not_make_is_refused(cursor: str) -> None:
    with pytest.raises(InvalidCursorError):
        decode_cursor(OWNER, cursor)


def jobs_with(status: str, error_code: str | None = None) -> FakeJobStore:
    return FakeJobStore(
        {
            "job_id": "j-1",
            "owner": OWNER,
            "status": status,
            "error_code": error_code,
            "request": {"model_id": "sd1.5", "prompt": "p"},
            "created_at": NOW,
            "updated_at": NOW,
            "deadline_at": NOW,
            "expires_at": 0,
            "callbacks": {"reference": "order-1"},
        }
    )


def deps(jobs: FakeJobStore, workflow: FakeWorkflow, notifier: FakeNotifier) -> FakePorts:
    return fake_ports(jobs=jobs, workflow=workflow, notifier=notifier, clock=FakeClock(NOW))


def test_cancelling_a_running_job_ends_it_stops_its_execution_and_publishes_once() -> None:
    jobs, workflow, notifier = jobs_with("PENDING"), FakeWorkflow(), FakeNotifier()
    view = cancel_job("j-1", owner=OWNER, deps=deps(jobs, workflow, notifier))
    assert (view.status, view.error_code) == ("FAILURE", "CANCELLED")
    assert [job_id for job_id, _ in workflow.stopped] == ["j-1"]
    (published,) = notifier.published
    assert (published.detail.error_code, published.detail.reference) == ("CANCELLED", "order-1")
    # And again: the same answer, nothing stopped or published twice
    again = cancel_job("j-1", owner=OWNER, deps=deps(jobs, workflow, notifier))
    assert again.error_code == "CANCELLED"
    assert (len(workflow.stopped), len(notifier.published)) == (1, 1)


def test_a_finished_job_is_left_as_it_is() -> None:
    jobs, workflow, notifier = jobs_with("SUCCESS"), FakeWorkflow(), FakeNotifier()
    with pytest.raises(JobFinishedError) as finished:
        cancel_job("j-1", owner=OWNER, deps=deps(jobs, workflow, notifier))
    assert finished.value.status == "SUCCESS"
    assert (workflow.stopped, notifier.published) == ([], [])


def test_another_callers_job_is_unknown() -> None:
    with pytest.raises(JobNotFoundError):
        cancel_job(
            "j-1",
            owner="someone-else",
            deps=deps(jobs_with("PENDING"), FakeWorkflow(), FakeNotifier()),
        )

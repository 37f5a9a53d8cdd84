"""Cancel and the list's cursor, with in-memory collaborators: no AWS, no sockets."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

import pytest

from imagegateway.adapters.image_store import ImageStore
from imagegateway.adapters.job_store import JobStore
from imagegateway.adapters.notifier import Notifier
from imagegateway.adapters.upstream_client import UpstreamClient
from imagegateway.adapters.workflow import Workflow
from imagegateway.domain.errors import InvalidCursorError, JobFinishedError, JobNotFoundError
from imagegateway.domain.events import Completion
from imagegateway.domain.records import JobRecord
from imagegateway.entrypoints.wiring import Collaborators
from imagegateway.platform.settings import Settings
from imagegateway.use_cases.cancel_job import cancel_job
from imagegateway.use_cases.list_jobs import decode_cursor, encode_cursor

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


class Jobs:
    def __init__(self, status: str, error_code: str | None = None) -> None:
        self.row: dict[str, Any] = {
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

    def get(self, job_id: str) -> JobRecord:
        return JobRecord.model_validate(self.row)

    def mark_cancelled(self, job_id: str, *, message: str, now: datetime) -> bool:
        if self.row["status"] != "PENDING":
            return False
        self.row |= {"status": "FAILURE", "error_code": "CANCELLED", "error_message": message}
        return True


class Recorder:
    def __init__(self) -> None:
        self.stopped: list[str] = []
        self.published: list[Completion] = []

    def stop(self, job_id: str, *, cause: str) -> None:
        self.stopped.append(job_id)

    def publish(self, completion: Completion) -> None:
        self.published.append(completion)


def deps(jobs: Jobs, recorder: Recorder) -> Collaborators:
    return Collaborators(
        settings=Settings(jobs_table_name="jobs", images_bucket_name="images"),
        jobs=cast(JobStore, jobs),
        upstream=cast(UpstreamClient, object()),
        images=cast(ImageStore, object()),
        workflow=cast(Workflow, recorder),
        notifier=cast(Notifier, recorder),
        clock=lambda: NOW,
    )


def test_cancelling_a_running_job_ends_it_stops_its_execution_and_publishes_once() -> None:
    jobs, recorder = Jobs("PENDING"), Recorder()
    view = cancel_job("j-1", owner=OWNER, deps=deps(jobs, recorder))
    assert (view.status, view.error_code) == ("FAILURE", "CANCELLED")
    assert recorder.stopped == ["j-1"]
    (published,) = recorder.published
    assert (published.detail.error_code, published.detail.reference) == ("CANCELLED", "order-1")
    # And again: the same answer, nothing stopped or published twice
    again = cancel_job("j-1", owner=OWNER, deps=deps(jobs, recorder))
    assert again.error_code == "CANCELLED"
    assert (len(recorder.stopped), len(recorder.published)) == (1, 1)


def test_a_finished_job_is_left_as_it_is() -> None:
    jobs, recorder = Jobs("SUCCESS"), Recorder()
    with pytest.raises(JobFinishedError) as finished:
        cancel_job("j-1", owner=OWNER, deps=deps(jobs, recorder))
    assert finished.value.status == "SUCCESS"
    assert (recorder.stopped, recorder.published) == ([], [])


def test_another_callers_job_is_unknown() -> None:
    with pytest.raises(JobNotFoundError):
        cancel_job("j-1", owner="someone-else", deps=deps(Jobs("PENDING"), Recorder()))

"""`retryable` on what a caller reads of a failure: the status view of a failed job, its
completion detail (event, task output, webhook data) and a refused request's; never on a
success. Held to the published schema."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from imagegateway.domain.errors import BudgetExceededError, InvalidRequestError
from imagegateway.domain.records import Callbacks, JobRecord
from imagegateway.use_cases.completion import completion_of, refuse_request
from imagegateway.use_cases.view_job import view_of
from tests.support.event_schema import COMPLETED, schema_errors
from tests.support.fakes import FakeClock, FakePorts, fake_ports

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def deps() -> FakePorts:
    return fake_ports(clock=FakeClock(NOW))


def record(**extra: Any) -> JobRecord:
    return JobRecord.model_validate(
        {
            "job_id": "job-1",
            "owner": "o",
            "kind": "text2image",
            "request": {"model_id": "sd1.5", "prompt": "p"},
            "created_at": NOW - timedelta(seconds=40),
            "updated_at": NOW,
            "deadline_at": NOW + timedelta(minutes=10),
            "expires_at": 0,
            **extra,
        }
    )


@pytest.mark.parametrize(("code", "retryable"), [("TIMED_OUT", True), ("CANCELLED", False)])
def test_a_failed_jobs_view_and_completion_say_whether_retrying_helps(
    code: str, retryable: bool
) -> None:
    # Given a job that failed with a code
    failed = record(status="FAILURE", error_code=code, error_message="m")
    # When its caller reads its status, and its completion is built
    view = view_of(failed, deps()).model_dump(mode="json", exclude_none=True)
    detail = completion_of(failed, deps()).detail.model_dump(mode="json", exclude_none=True)
    # Then both carry the code's decision, and the detail keeps to the published schema
    assert (view["error_code"], view["retryable"]) == (code, retryable)
    assert (detail["error_code"], detail["retryable"]) == (code, retryable)
    assert schema_errors(COMPLETED, detail) == []


def test_a_pending_or_succeeded_job_says_nothing_about_retrying() -> None:
    # A completion is only ever built for a job that ended: SUCCESS is the other end
    assert "retryable" not in view_of(record(status="PENDING"), deps()).model_dump(
        exclude_none=True
    )
    succeeded = record(status="SUCCESS")
    assert "retryable" not in view_of(succeeded, deps()).model_dump(exclude_none=True)
    detail = completion_of(succeeded, deps()).detail
    assert "retryable" not in detail.model_dump(exclude_none=True)


def test_a_refused_request_says_whether_retrying_helps() -> None:
    # Given a request refused as invalid, and one refused over its owner's budget
    invalid = InvalidRequestError("invalid request", details=[("request.width", "too wide")])
    over = BudgetExceededError("spent", budget=3, used=3, resets_at=NOW + timedelta(hours=12))
    # When each is refused / Then the first is not worth retrying, the second is (after reset)
    for error, retryable in ((invalid, False), (over, True)):
        completion = refuse_request(Callbacks(), error, deps(), owner="o")
        detail = completion.detail.model_dump(mode="json", exclude_none=True)
        assert detail["retryable"] is retryable
        assert schema_errors(COMPLETED, detail) == []


def test_the_schema_takes_retryable_as_an_optional_boolean() -> None:
    failure = {"status": "FAILURE", "job_id": "j", "error": "x", "error_code": "TIMED_OUT"}
    # An older producer's failure (no retryable) stays valid: the property is optional
    assert schema_errors(COMPLETED, failure) == []
    assert schema_errors(COMPLETED, {**failure, "retryable": True}) == []
    assert schema_errors(COMPLETED, {**failure, "retryable": "yes"})

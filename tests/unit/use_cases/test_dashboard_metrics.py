"""The metrics the operators' dashboard (template.yaml, OperatorsDashboard) charts that the
workflow's steps emit: each counted once per thing it counts, and the detection delay an upper
bound of how long a finished upstream job waited to be seen. In memory, no AWS.

tests/template/test_dashboard.py holds every widget to a metric named here or elsewhere in the
code; these tests hold the code to emitting it when it should."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from imagegateway.domain.base import JobKind, JobStatus
from imagegateway.domain.errors import JobEndedElsewhereError
from imagegateway.domain.image_requests import UpstreamAnswer
from imagegateway.domain.tickets import JobTicket
from imagegateway.platform.observability import metrics
from imagegateway.platform.settings import Settings
from imagegateway.use_cases.steps.check_job import check_job
from imagegateway.use_cases.steps.fail_job import fail_job
from imagegateway.use_cases.steps.store_job import store_job
from tests.support.fakes import FakeClock, FakeJobStore, FakePorts, FakeUpstream, fake_ports

NOW = datetime(2026, 12, 9, 12, 0, tzinfo=UTC)
TOKEN = "run-token-0123456789abcdef"
URL = "https://cdn.imagepipeline.io/u-1/0.png"


@pytest.fixture(autouse=True)
def no_metrics_left() -> Iterator[None]:
    metrics.clear_metrics()
    yield
    metrics.clear_metrics()


def emitted(name: str) -> list[float]:
    """The values of `name` in the invocation's metric set (what its flush would publish)."""
    found = metrics.provider.metric_set.get(name)
    return list(found["Value"]) if found else []


def ports(
    clock: FakeClock, upstream: FakeUpstream | None = None, *, stretch: int = 100, **row: Any
) -> FakePorts:
    jobs = FakeJobStore(
        {
            "job_id": "job-1",
            "owner": "o",
            "status": "PENDING",
            "request": {"model_id": "sd1.5", "prompt": "p"},
            "run_token": TOKEN,
            "upstream_id": "u-1",
            "created_at": NOW,
            "updated_at": NOW,
            "deadline_at": NOW + timedelta(minutes=15),
            "expires_at": 0,
            **row,
        }
    )
    settings = Settings(
        jobs_table_name="jobs", images_bucket_name="images", upstream_poll_stretch_seconds=stretch
    )
    return fake_ports(settings=settings, jobs=jobs, upstream=upstream, clock=clock)


def ticket(**fields: Any) -> JobTicket:
    return JobTicket.model_validate(
        {
            "job_id": "job-1",
            "run_token": TOKEN,
            "upstream_id": "u-1",
            "status": "PENDING",
            "wait_seconds": 1,
            "deadline_at": NOW + timedelta(minutes=15),
            **fields,
        }
    )


def upstream_done_after(clock: FakeClock, seconds: float) -> FakeUpstream:
    def status_of(kind: JobKind, upstream_id: str) -> UpstreamAnswer:
        if (clock.now - NOW).total_seconds() >= seconds:
            return UpstreamAnswer(status=JobStatus.SUCCESS, id=upstream_id, download_urls=[URL])
        return UpstreamAnswer(status=JobStatus.PENDING, id=upstream_id)

    return FakeUpstream(status_of=status_of)


def test_a_stretch_counts_every_status_call_and_sees_the_end_within_a_second() -> None:
    # Given an upstream that finishes 7.5 s after the first check, asked once a second
    clock = FakeClock(NOW)
    deps = ports(clock, upstream_done_after(clock, 7.5))
    # When one status check runs
    checked = check_job(ticket(), deps)
    # Then its 9 calls (0 s ... 8 s) are counted, and the job was seen done at most 1 s after
    # the last answer that said PENDING
    assert checked.status is JobStatus.SUCCESS
    assert sum(emitted("UpstreamStatusChecks")) == 9
    assert emitted("DetectionDelay") == [1.0]


def test_the_detection_delay_spans_the_state_machines_wait_between_invocations() -> None:
    # Given a check without a stretch that saw PENDING at 0 s, and the state machine's wait
    clock = FakeClock(NOW)
    upstream = upstream_done_after(clock, 3)
    deps = ports(clock, upstream, stretch=0)
    first = check_job(ticket(), deps)
    assert first.status is JobStatus.PENDING
    assert emitted("DetectionDelay") == []
    clock.advance(first.wait_seconds)
    # When the next invocation (the ticket it was handed) sees SUCCESS
    second = check_job(first, deps)
    # Then the delay runs from the first invocation's PENDING answer
    assert second.status is JobStatus.SUCCESS
    assert emitted("DetectionDelay") == [float(first.wait_seconds)]
    assert sum(emitted("UpstreamStatusChecks")) == 2


def test_a_job_done_at_its_first_check_is_timed_from_the_submits_answer() -> None:
    # Given a job the upstream accepted 4 s ago and has finished since
    clock = FakeClock(NOW)
    deps = ports(clock, upstream_done_after(clock, 0), accepted_at=NOW - timedelta(seconds=4))
    # When it is checked / Then the delay is bounded by the submit's PENDING answer
    check_job(ticket(), deps)
    assert emitted("DetectionDelay") == [4.0]


def test_a_stored_job_counts_once_as_succeeded() -> None:
    # Given a job the upstream finished
    clock = FakeClock(NOW)
    deps = ports(clock, submit_started_at=NOW)
    done = ticket(status="SUCCESS", download_urls=[URL])
    # When its store step runs, then again (a duplicate run)
    store_job(done, deps)
    with pytest.raises(JobEndedElsewhereError):
        store_job(done, deps)
    # Then one job succeeded
    assert emitted("JobsSucceeded") == [1.0]


def test_a_failed_job_counts_once_by_its_error_code(capsys: pytest.CaptureFixture[str]) -> None:
    # Given a job the upstream failed
    clock = FakeClock(NOW)
    deps = ports(clock, submit_started_at=NOW)
    failing = ticket(status="FAILURE", failure={"code": "UPSTREAM_FAILURE", "message": "x"})
    capsys.readouterr()
    # When RecordFailure runs, then again (a duplicate run)
    fail_job(failing, deps)
    with pytest.raises(JobEndedElsewhereError):
        fail_job(failing, deps)
    # Then one EMF line counts it under its code, beside the service dimension
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    by_code = [line for line in lines if "JobsFailedByCode" in line]
    assert len(by_code) == 1
    ((directive,),) = [line["_aws"]["CloudWatchMetrics"] for line in by_code]
    assert directive["Dimensions"] == [["error_code", "service"]]
    assert (by_code[0]["error_code"], by_code[0]["JobsFailedByCode"]) == ("UPSTREAM_FAILURE", [1.0])
    assert emitted("JobsFailed") == [1.0]

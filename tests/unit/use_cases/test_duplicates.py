"""A keyed duplicate (the same owner, idempotency key and request) is the same job, told on its
own callbacks: folded into a running job's row, or told at once when the job has ended. In
memory, no AWS (issue #20, finding 5)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from imagegateway.domain.base import JobStatus
from imagegateway.domain.records import Callbacks, JobRecord
from imagegateway.use_cases.completion import announce, fold_into_job
from tests.support.fakes import FakeClock, FakeNotifier, FakePorts, fake_ports

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
OWNER = "iam:AIDAEXAMPLEOWNER0001"
FIRST = Callbacks(reference="first", task_token="token-1", webhook_url="https://a.example/h")
SECOND = Callbacks(reference="second", task_token="token-2", webhook_url="https://b.example/h")


def job(status: JobStatus = JobStatus.PENDING, **extra: Any) -> JobRecord:
    ended = {"completed_at": NOW} if status is not JobStatus.PENDING else {}
    failure = (
        {"error_code": "UPSTREAM_FAILURE", "error_message": "no"}
        if status is JobStatus.FAILURE
        else {}
    )
    return JobRecord.model_validate(
        {
            "job_id": "job-1",
            "owner": OWNER,
            "status": status,
            "request": {"model_id": "sd1.5", "prompt": "p"},
            "callbacks": FIRST,
            "created_at": NOW - timedelta(seconds=40),
            "updated_at": NOW,
            "deadline_at": NOW + timedelta(minutes=10),
            "expires_at": 0,
            **ended,
            **failure,
            **extra,
        }
    )


def ports_with(row: JobRecord) -> FakePorts:
    deps = fake_ports(clock=FakeClock(NOW))
    deps.jobs.put(row)
    return deps


def end(deps: FakePorts) -> None:
    """The workflow's ending: the row read back after the conditional end, everyone told."""
    deps.jobs.mark_failed("job-1", code="UPSTREAM_FAILURE", message="no", now=NOW)
    record = deps.jobs.get("job-1")
    announce(record, deps)


def test_a_duplicate_of_a_running_job_is_told_when_it_ends_on_its_own_callbacks() -> None:
    # Given a running job, and a duplicate request with callbacks of its own
    deps = ports_with(job())
    fold_into_job("job-1", SECOND, deps=deps)
    # When the job ends
    end(deps)
    # Then both tokens are answered, both webhooks queued (distinct ids, the owner's secret),
    # and the duplicate's own reference gets a completion event of its own (after the job's)
    assert [token for token, _ in deps.notifier.answered] == ["token-1", "token-2"]
    assert [url for url, _ in deps.notifier.webhooks] == [FIRST.webhook_url, SECOND.webhook_url]
    owners_and_variants = [(o, bool(v)) for _, o, v in deps.notifier.webhook_owners]
    assert owners_and_variants == [(OWNER, False), (OWNER, True)]
    told_second = [c.detail for _, c in deps.notifier.answered][1]
    assert (told_second.reference, told_second.job_id) == ("second", "job-1")
    assert [c.detail.reference for c in deps.notifier.published] == ["first", "second"]


def test_a_duplicate_of_an_ended_job_is_told_at_once() -> None:
    # Given a job that has ended, its end told
    deps = ports_with(job())
    end(deps)
    deps.notifier = FakeNotifier()
    # When a duplicate arrives
    fold_into_job("job-1", SECOND, deps=deps)
    # Then it is told now, on its callbacks only, and kept on the row as told
    assert [token for token, _ in deps.notifier.answered] == ["token-2"]
    assert [c.detail.reference for c in deps.notifier.published] == ["second"]
    assert deps.jobs.get("job-1").also_tell == [SECOND]
    assert deps.jobs.untold(ended_before=NOW + timedelta(days=1)) == []


def test_a_redelivered_request_adds_nothing() -> None:
    # Given a running job, its own request delivered again, then a duplicate twice
    deps = ports_with(job())
    fold_into_job("job-1", FIRST, deps=deps)
    fold_into_job("job-1", SECOND, deps=deps)
    fold_into_job("job-1", SECOND, deps=deps)
    fold_into_job("job-1", Callbacks(), deps=deps)
    # Then the row tells the duplicate once
    assert deps.jobs.get("job-1").also_tell == [SECOND]


@settings(max_examples=60, deadline=None)
@given(fold_first=st.booleans(), many=st.integers(min_value=1, max_value=4))
def test_whichever_comes_first_every_duplicate_is_told_exactly_once(
    fold_first: bool, many: int
) -> None:
    # Given duplicates arriving before or after the job's end
    duplicates = [Callbacks(reference=f"dup-{n}", task_token=f"tok-{n}") for n in range(many)]
    deps = ports_with(job())
    if fold_first:
        for callbacks in duplicates:
            fold_into_job("job-1", callbacks, deps=deps)
        end(deps)
    else:
        end(deps)
        for callbacks in duplicates:
            fold_into_job("job-1", callbacks, deps=deps)
    # Then each token is answered exactly once, the job's own too
    tokens = sorted(token for token, _ in deps.notifier.answered)
    assert tokens == sorted(["token-1", *(f"tok-{n}" for n in range(many))])

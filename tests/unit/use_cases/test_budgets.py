"""Per-caller budgets in the use cases, with in-memory collaborators (no sockets): a job is
counted before anything is stored, a refused one leaves no trace, and a job never sent gives
its images back."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from imagegateway.domain.base import JobKind
from imagegateway.domain.errors import BudgetExceededError, UpstreamKeyMissingError
from imagegateway.domain.prompt_tokens import measure_prompts
from imagegateway.domain.records import JobRecord
from imagegateway.use_cases.completion import give_back_if_never_sent
from imagegateway.use_cases.submit_job import record_job
from tests.support.fakes import FakeClock, FakeJobStore, FakePorts, FakeUsageStore, fake_ports

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)

# The entry point measures a request's prompts once and passes them down.
TOKENS = measure_prompts({"prompt": "p"})


def deps(usage: FakeUsageStore, jobs: FakeJobStore | None = None) -> FakePorts:
    # The upstream key is configured (record_job refuses first when it is missing).
    return fake_ports(jobs=jobs or FakeJobStore(), usage=usage, clock=FakeClock(NOW))


@pytest.mark.parametrize("kind", list(JobKind))
def test_a_job_over_the_budget_is_refused_before_it_is_stored(kind: JobKind) -> None:
    # Given a budget of 3 images, 2 of them used
    usage, jobs = FakeUsageStore(budget=3), FakeJobStore()
    record_job(
        JobKind.TEXT2IMAGE,
        {"prompt": "p", "samples": 2},
        owner="o",
        tokens=TOKENS,
        deps=deps(usage, jobs),
    )
    # When a job of any kind for 2 more images is recorded / Then it is refused, and no row
    # was written
    with pytest.raises(BudgetExceededError):
        record_job(
            kind,
            {"prompt": "p", "samples": 2},
            owner="o",
            tokens=TOKENS,
            deps=deps(usage, jobs),
        )
    assert len(jobs.items) == 1
    assert usage.today("o", now=NOW).images == 2


@pytest.mark.parametrize(("budget", "samples"), [(1, 4), (0, 1)])
def test_a_days_first_job_that_does_not_fit_is_refused(budget: int, samples: int) -> None:
    # Given a caller that has spent nothing today, and a budget smaller than its job
    usage, jobs = FakeUsageStore(budget=budget), FakeJobStore()
    # When its first job of the day is recorded / Then it is refused, no row, nothing counted
    with pytest.raises(BudgetExceededError) as refused:
        record_job(
            JobKind.TEXT2IMAGE,
            {"prompt": "p", "samples": samples},
            owner="o",
            tokens=TOKENS,
            deps=deps(usage, jobs),
        )
    assert (jobs.items, usage.today("o", now=NOW).images) == ({}, 0)
    # and the caller reads that waiting for the reset will not help this job
    assert "never fits" in refused.value.message


def row(**extra: Any) -> JobRecord:
    return JobRecord.model_validate(
        {
            "job_id": "j",
            "owner": "o",
            "status": "FAILURE",
            "request": {"prompt": "p", "samples": 3},
            "created_at": NOW,
            "updated_at": NOW,
            "deadline_at": NOW,
            "expires_at": 0,
            **extra,
        }
    )


def test_only_a_job_never_sent_gives_its_images_back() -> None:
    usage = FakeUsageStore(budget=12)
    # Given jobs that failed before their POST, during it, and after the upstream took them
    # (each counted against its caller's day when it was accepted), and one that succeeded
    for _ in range(4):
        usage.reserve("o", 3, now=NOW)
    give_back_if_never_sent(row(), deps(usage))
    give_back_if_never_sent(row(submit_started_at=NOW), deps(usage))
    give_back_if_never_sent(row(upstream_id="u-1", submit_started_at=NOW), deps(usage))
    give_back_if_never_sent(row(status="SUCCESS"), deps(usage))
    # Then only the first (nothing was charged) gives its 3 images back
    assert usage.given_back == [("o", 3)]
    assert usage.today("o", now=NOW).images == 9


def test_a_job_that_could_not_be_stored_gives_its_images_back() -> None:
    # Given a job store that fails to write the row
    class BrokenJobs(FakeJobStore):
        def create(self, **fields: Any) -> JobRecord:
            raise RuntimeError("DynamoDB is down")

    usage = FakeUsageStore(budget=3)
    # When a job of 2 images is recorded / Then it fails, and its images are given back
    with pytest.raises(RuntimeError):
        record_job(
            JobKind.TEXT2IMAGE,
            {"prompt": "p", "samples": 2},
            owner="o",
            tokens=TOKENS,
            deps=deps(usage, BrokenJobs()),
        )
    assert usage.given_back == [("o", 2)]
    assert usage.today("o", now=NOW).images == 0


def test_without_an_upstream_key_a_job_is_refused_before_it_is_counted_or_stored() -> None:
    # Given a first deploy whose upstream key secret has no value yet
    usage, jobs = FakeUsageStore(budget=3), FakeJobStore()
    missing = UpstreamKeyMissingError("the upstream API key secret has no value yet")
    deps = fake_ports(jobs=jobs, usage=usage, clock=FakeClock(NOW), upstream_key_error=missing)
    # When a job is recorded / Then it is refused, nothing counted and no row written
    with pytest.raises(UpstreamKeyMissingError):
        record_job(
            JobKind.TEXT2IMAGE, {"prompt": "p", "samples": 2}, owner="o", tokens=TOKENS, deps=deps
        )
    assert (usage.today("o", now=NOW).images, jobs.items) == (0, {})

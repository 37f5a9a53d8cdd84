"""Per-caller budgets in the use cases, with in-memory collaborators (no sockets): a job is
counted before anything is stored, a refused one leaves no trace, and a job never sent gives
its images back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest

from imagegateway.adapters.job_store import JobStore
from imagegateway.adapters.usage_store import UsageStore
from imagegateway.domain.base import JobKind
from imagegateway.domain.errors import BudgetExceededError
from imagegateway.domain.records import JobRecord
from imagegateway.entrypoints.wiring import Collaborators
from imagegateway.platform.settings import Settings
from imagegateway.use_cases.completion import give_back_if_never_sent
from imagegateway.use_cases.submit_job import record_job

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


class FakeUsage:
    def __init__(self, budget: int) -> None:
        self.budget, self.used = budget, 0
        self.given_back: list[tuple[str, int]] = []

    def reserve(self, owner: str, images: int, *, now: datetime) -> None:
        if self.used + images > self.budget:
            raise BudgetExceededError(
                "spent", budget=self.budget, used=self.used, resets_at=now + timedelta(hours=12)
            )
        self.used += images

    def give_back(self, owner: str, images: int, *, accepted_at: datetime) -> None:
        self.given_back.append((owner, images))


class FakeJobs:
    def __init__(self) -> None:
        self.created: list[str] = []

    def create(self, **fields: Any) -> None:
        self.created.append(fields["job_id"])


def deps(usage: FakeUsage, jobs: FakeJobs | None = None) -> Collaborators:
    return Collaborators(
        Settings(jobs_table_name="jobs", images_bucket_name="images"),
        jobs=cast(JobStore, jobs or FakeJobs()),
        usage=cast(UsageStore, usage),
        clock=lambda: NOW,
    )


@pytest.fixture(autouse=True)
def _a_key_is_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    # record_job refuses first when the upstream key is missing; here it is there.
    monkeypatch.setattr(Collaborators, "require_upstream_key", lambda self: None)


def test_a_job_over_the_budget_is_refused_before_it_is_stored() -> None:
    # Given a budget of 3 images, 2 of them used
    usage, jobs = FakeUsage(budget=3), FakeJobs()
    record_job(JobKind.TEXT2IMAGE, {"prompt": "p", "samples": 2}, owner="o", deps=deps(usage, jobs))
    # When a job of 2 more images is recorded / Then it is refused, and no row was written
    with pytest.raises(BudgetExceededError):
        record_job(
            JobKind.TEXT2IMAGE, {"prompt": "p", "samples": 2}, owner="o", deps=deps(usage, jobs)
        )
    assert len(jobs.created) == 1
    assert usage.used == 2


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
    usage = FakeUsage(budget=10)
    # Given jobs that failed before their POST, during it, and after the upstream took them
    give_back_if_never_sent(row(), deps(usage))
    give_back_if_never_sent(row(submit_started_at=NOW), deps(usage))
    give_back_if_never_sent(row(upstream_id="u-1", submit_started_at=NOW), deps(usage))
    give_back_if_never_sent(row(status="SUCCESS"), deps(usage))
    # Then only the first (nothing was charged) gives its 3 images back
    assert usage.given_back == [("o", 3)]


def test_a_job_that_could_not_be_stored_gives_its_images_back() -> None:
    # Given a job store that fails to write the row
    class BrokenJobs(FakeJobs):
        def create(self, **fields: Any) -> None:
            raise RuntimeError("DynamoDB is down")

    usage = FakeUsage(budget=3)
    # When a job of 2 images is recorded / Then it fails, and its images are given back
    with pytest.raises(RuntimeError):
        record_job(
            JobKind.TEXT2IMAGE,
            {"prompt": "p", "samples": 2},
            owner="o",
            deps=deps(usage, BrokenJobs()),
        )
    assert usage.given_back == [("o", 2)]

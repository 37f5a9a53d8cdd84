"""Every ending told at least once (issue #21, finding 4): whatever the bus, Step Functions or the
webhook queue refuse at a job's ending stays on its row, and the reconciler tells it once they
are back; what was told is not told again. Each way a job ends, in memory, no AWS."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from datetime import timedelta

import pytest

from imagegateway.domain.base import JobStatus
from imagegateway.domain.errors import WorkflowNotStartedError
from imagegateway.domain.records import Callbacks
from imagegateway.domain.tickets import CaughtError
from imagegateway.use_cases.cancel_job import cancel_job
from imagegateway.use_cases.completion import conclude, fold_into_job
from imagegateway.use_cases.reconcile import reconcile_jobs
from imagegateway.use_cases.start_job import start_job
from imagegateway.use_cases.steps.fail_job import fail_job
from imagegateway.use_cases.steps.store_job import store_job
from tests.support.fakes import FakeClock, FakeJobStore, FakePorts
from tests.unit.use_cases.test_one_ending import NOW, OWNER, ports, row, ticket

URLS = ["https://u/1", "https://u/2"]


def told(deps: FakePorts) -> tuple[int, int, int]:
    """(completion events, task answers, webhooks) told so far."""
    notifier = deps.notifier
    return len(notifier.published), len(notifier.answered), len(notifier.webhooks)


def advance(deps: FakePorts, seconds: float) -> None:
    assert isinstance(deps.clock, FakeClock)
    deps.clock.advance(seconds)


def reconcile_after_the_grace(deps: FakePorts) -> None:
    advance(deps, deps.settings.tell_grace_seconds + 1)
    reconcile_jobs(deps)


def stored(deps: FakePorts) -> None:
    store_job(ticket(upstream_id="up-1", status="SUCCESS", download_urls=URLS), deps)


def failed(deps: FakePorts) -> None:
    caught = CaughtError(error="UpstreamFailedError", cause='{"errorMessage": "it broke"}')
    fail_job(ticket(upstream_id="up-1", failure=caught), deps)


def cancelled(deps: FakePorts) -> None:
    cancel_job("job-1", owner=OWNER, deps=deps)


def refused_start(deps: FakePorts) -> None:
    deps.workflow.starts = False
    with contextlib.suppress(WorkflowNotStartedError):
        start_job(ticket(), deps)


def ended_by_the_reconciler(deps: FakePorts) -> None:
    advance(deps, 15 * 60 + deps.settings.reconcile_margin_seconds + 1)
    reconcile_jobs(deps)


ENDINGS: dict[str, Callable[[FakePorts], None]] = {
    "stored": stored,
    "failed": failed,
    "cancelled": cancelled,
    "refused start": refused_start,
    "ended by the reconciler": ended_by_the_reconciler,
}


@pytest.mark.parametrize("ending", ENDINGS)
@pytest.mark.parametrize("down", ["event", "task", "webhook"])
def test_what_an_outage_kept_from_a_caller_is_told_when_it_is_over(ending: str, down: str) -> None:
    # Given a job with a task token and a webhook, and the bus (or Step Functions' task
    # answers, or the webhook queue) refusing every call
    deps = ports(FakeJobStore(row(submit_started_at=NOW, upstream_id="up-1")), express=False)
    if ending in ("refused start", "ended by the reconciler"):
        deps.jobs.put(row())  # never sent
    deps.notifier.down = {down}
    # When the job ends
    ENDINGS[ending](deps)
    # Then it ended, everything else was told, and the row keeps what was not
    record = deps.jobs.get("job-1")
    assert record.status is JobStatus.FAILURE or ending == "stored"
    assert sum(told(deps)) == 2
    assert deps.jobs.untold(ended_before=NOW + timedelta(days=1)) == ["job-1"]
    assert down not in (record.told or set())
    # When the outage is over and the reconciler runs
    deps.notifier.down = set()
    reconcile_after_the_grace(deps)
    # Then what was missing is told, once, with the job's one ending; nothing else again
    assert told(deps) == (1, 1, 1)
    endings = {c.detail.status for c in deps.notifier.published}
    assert endings == {record.status}
    assert deps.jobs.untold(ended_before=NOW + timedelta(days=1)) == []
    # And later runs tell nothing more
    reconcile_after_the_grace(deps)
    assert told(deps) == (1, 1, 1)


def test_an_ending_whose_teller_died_before_telling_is_told_by_the_reconciler() -> None:
    # Given a job ended by a write whose teller then died (a Lambda timeout, a crash)
    deps = ports(FakeJobStore(row(submit_started_at=NOW, upstream_id="up-1")))
    deps.jobs.mark_failed("job-1", code="UPSTREAM_FAILURE", message="it broke", now=NOW)
    assert told(deps) == (0, 0, 0)
    # When the reconciler runs before the grace, then after it
    reconcile_jobs(deps)
    assert told(deps) == (0, 0, 0)  # the teller may still be at work
    reconcile_after_the_grace(deps)
    # Then the job's end is told, all of it
    assert told(deps) == (1, 1, 1)
    assert deps.notifier.published[0].detail.error_code == "UPSTREAM_FAILURE"


def test_a_duplicate_folded_into_an_ended_job_during_an_outage_is_told_later() -> None:
    # Given a job whose end was told, and a duplicate request arriving while the queue is down
    deps = ports(FakeJobStore(row(submit_started_at=NOW, upstream_id="up-1")))
    failed(deps)
    assert told(deps) == (1, 1, 1)
    deps.notifier.down = {"webhook"}
    duplicate = Callbacks(reference="dup", task_token="token-2", webhook_url="https://b.example/h")
    fold_into_job("job-1", duplicate, deps=deps)
    # Then its event and task answer are told now, its webhook is left on the row
    assert told(deps) == (2, 2, 1)
    # When the queue is back and the reconciler runs
    deps.notifier.down = set()
    reconcile_after_the_grace(deps)
    # Then the duplicate's webhook is told, and nothing of the job's own end again
    assert told(deps) == (2, 2, 2)
    assert deps.notifier.webhook_owners[-1][0] == "https://b.example/h"
    assert deps.jobs.untold(ended_before=NOW + timedelta(days=1)) == []


def test_a_cache_hit_told_during_a_bus_outage_is_told_later() -> None:
    # Given a job served from the cache while the bus is down (born SUCCESS, told at once)
    deps = ports(FakeJobStore(row(submit_started_at=NOW, upstream_id="up-1")))
    stored(deps)
    original = deps.jobs.get("job-1")
    deps.notifier.down = {"event"}
    deps.jobs.create_served(
        job_id="job-2",
        owner=OWNER,
        kind=original.kind,
        request=original.request,
        now=NOW,
        original=original,
        images=original.images,
        cache_key="key",
    )
    conclude(deps.jobs.get("job-2"), deps)
    assert len(deps.notifier.published) == 1  # the first job's only
    # When the bus is back and the reconciler runs
    deps.notifier.down = set()
    reconcile_after_the_grace(deps)
    # Then the served job's event is published, once
    assert [c.detail.job_id for c in deps.notifier.published] == ["job-1", "job-2"]

"""The reconciler's outcomes, driven with in-memory collaborators: no moto, no fake upstream,
sockets disabled."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest

from imagegateway.adapters.image_store import ImageStore
from imagegateway.adapters.job_store import JobStore
from imagegateway.adapters.notifier import Notifier
from imagegateway.adapters.upstream_client import UpstreamClient
from imagegateway.adapters.workflow import Workflow
from imagegateway.domain.base import JobKind, JobStatus
from imagegateway.domain.errors import UpstreamUnavailableError
from imagegateway.domain.events import Completion
from imagegateway.domain.image_requests import UpstreamAnswer
from imagegateway.domain.records import JobRecord
from imagegateway.domain.tickets import JobTicket
from imagegateway.entrypoints.wiring import Collaborators
from imagegateway.platform.settings import Settings
from imagegateway.use_cases.reconcile import reconcile_overdue_jobs

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
TOKEN = "run-token-0123456789abcdef"


def row(job_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "job_id": job_id,
        "owner": "arn:aws:iam::123456789012:role/client",
        "kind": "text2image",
        "status": "PENDING",
        "request": '{"model_id": "sd1.5", "prompt": "p"}',
        "run_token": TOKEN,
        "created_at": (NOW - timedelta(hours=2)).isoformat(),
        "updated_at": (NOW - timedelta(hours=2)).isoformat(),
        "deadline_at": (NOW - timedelta(hours=1)).isoformat(),
        "expires_at": 0,
        **extra,
    }


class FakeJobs:
    def __init__(self, *rows: dict[str, Any]) -> None:
        self.rows = {item["job_id"]: item for item in rows}
        self.failed: dict[str, str] = {}
        self.reconcile_failures: dict[str, int] = {}

    def overdue(self, *, deadline_before: datetime, limit: int = 100) -> list[dict[str, Any]]:
        return [item for item in self.rows.values() if item["job_id"] not in self.failed]

    def mark_failed(self, job_id: str, *, code: str, message: str, now: datetime) -> bool:
        self.failed[job_id] = code
        return True

    parse = staticmethod(JobStore.parse)

    def get(self, job_id: str) -> JobRecord:
        item = dict(self.rows[job_id])
        if job_id in self.failed:
            item |= {"status": "FAILURE", "error_code": self.failed[job_id], "error_message": "m"}
        return JobStore.parse(item)

    def touch(self, job_id: str, *, now: datetime) -> None:
        self.rows[job_id] = {**self.rows[job_id], "updated_at": now.isoformat()}

    def count_reconcile_failure(self, job_id: str, *, now: datetime) -> int:
        self.reconcile_failures[job_id] = self.reconcile_failures.get(job_id, 0) + 1
        return self.reconcile_failures[job_id]


class FakeWorkflow(Workflow):
    """The real adapter's rules over in-memory executions (what DescribeExecution would say)."""

    def __init__(self, statuses: dict[str, str] | None = None, *, express: bool = False) -> None:
        super().__init__("arn:aws:states:us-east-1:123456789012:stateMachine:jobs", express=express)
        self.statuses = statuses or {}
        self.started: list[tuple[str, JobTicket]] = []

    def status(self, name: str) -> str | None:
        status = self.statuses.get(name)
        if status == "THROTTLED":
            raise RuntimeError("Rate exceeded")
        return status

    def start(self, ticket: JobTicket, *, name: str | None = None) -> bool:
        self.started.append((name or ticket.job_id, ticket))
        return True


class FakeNotifier:
    def __init__(self) -> None:
        self.published: list[Completion] = []
        self.answered: list[tuple[str, Completion]] = []
        self.webhooks: list[tuple[str, Completion]] = []

    def publish(self, completion: Completion) -> None:
        self.published.append(completion)

    def answer_task(self, task_token: str, completion: Completion) -> None:
        self.answered.append((task_token, completion))

    def queue_webhook(self, url: str, completion: Completion, *, now: datetime) -> None:
        self.webhooks.append((url, completion))


class FakeUpstream:
    def __init__(self, answers: dict[str, UpstreamAnswer | Exception]) -> None:
        self.answers = answers
        self.asked: list[tuple[JobKind, str]] = []

    def status(self, kind: JobKind, upstream_id: str) -> UpstreamAnswer:
        self.asked.append((kind, upstream_id))
        answer = self.answers[upstream_id]
        if isinstance(answer, Exception):
            raise answer
        return answer


def collaborators(
    jobs: FakeJobs,
    workflow: FakeWorkflow | None = None,
    upstream: FakeUpstream | None = None,
    notifier: FakeNotifier | None = None,
) -> Collaborators:
    settings = Settings(jobs_table_name="jobs", images_bucket_name="images")
    return Collaborators(
        settings=settings,
        jobs=cast(JobStore, jobs),
        upstream=cast(UpstreamClient, upstream or FakeUpstream({})),
        images=cast(ImageStore, object()),
        workflow=cast(Workflow, workflow or FakeWorkflow()),
        notifier=cast(Notifier, notifier or FakeNotifier()),
        clock=lambda: NOW,
    )


def test_a_finished_job_whose_execution_died_is_resumed_with_its_images() -> None:
    # Given a job the upstream finished, whose execution is gone
    jobs = FakeJobs(row("done-1", upstream_id="u1"))
    workflow = FakeWorkflow({"done-1": "FAILED"})
    urls = ["https://cdn.imagepipeline.io/u1/0.png"]
    upstream = FakeUpstream({"u1": UpstreamAnswer(status=JobStatus.SUCCESS, download_urls=urls)})
    # When the reconciler runs
    report = reconcile_overdue_jobs(collaborators(jobs, workflow, upstream))
    # Then it resumes it under the resume name, with the job's own run token and kind
    assert report.resumed == ["done-1"]
    ((name, ticket),) = workflow.started
    assert (name, ticket.run_token, ticket.download_urls) == ("done-1-resume", TOKEN, urls)
    assert upstream.asked == [(JobKind.TEXT2IMAGE, "u1")]


def test_a_job_still_pending_upstream_is_timed_out() -> None:
    jobs = FakeJobs(row("slow-1", upstream_id="u2"))
    upstream = FakeUpstream({"u2": UpstreamAnswer(status=JobStatus.PENDING, id="u2")})
    report = reconcile_overdue_jobs(collaborators(jobs, upstream=upstream))
    assert report.failed == ["slow-1"]
    assert jobs.failed == {"slow-1": "TIMED_OUT"}


def test_a_job_never_sent_is_not_submitted_and_one_being_sent_is_maybe_charged() -> None:
    jobs = FakeJobs(
        row("never-1"), row("claimed-1", submit_started_at=(NOW - timedelta(hours=2)).isoformat())
    )
    report = reconcile_overdue_jobs(collaborators(jobs))
    assert sorted(report.failed) == ["claimed-1", "never-1"]
    assert jobs.failed == {"never-1": "NOT_SUBMITTED", "claimed-1": "UPSTREAM_OUTCOME_UNKNOWN"}


def test_a_running_execution_is_left_alone() -> None:
    jobs = FakeJobs(row("running-1", upstream_id="u3"))
    report = reconcile_overdue_jobs(collaborators(jobs, FakeWorkflow({"running-1": "RUNNING"})))
    assert report.left_running == ["running-1"]
    assert jobs.failed == {}


def test_an_unreachable_upstream_is_retried_later_then_given_up_after_a_day() -> None:
    unreachable = FakeUpstream({"u4": UpstreamUnavailableError("down")})
    recent = FakeJobs(row("recent-1", upstream_id="u4"))
    assert reconcile_overdue_jobs(collaborators(recent, upstream=unreachable)).retry_later == [
        "recent-1"
    ]
    old = FakeJobs(
        row("old-1", upstream_id="u4", deadline_at=(NOW - timedelta(days=2)).isoformat())
    )
    assert reconcile_overdue_jobs(collaborators(old, upstream=unreachable)).failed == ["old-1"]
    assert old.failed == {"old-1": "UPSTREAM_UNAVAILABLE"}


@pytest.mark.parametrize("runs_before_giving_up", [5])
def test_a_job_that_keeps_failing_is_isolated_then_ended(runs_before_giving_up: int) -> None:
    # Given a malformed row, a throttled DescribeExecution, and a healthy overdue job
    jobs = FakeJobs(
        {**row("malformed-1"), "created_at": "not a date"},
        row("throttled-1"),
        row("healthy-1"),
    )
    workflow = FakeWorkflow({"throttled-1": "THROTTLED"})
    deps = collaborators(jobs, workflow)
    # When the reconciler runs
    report = reconcile_overdue_jobs(deps)
    # Then the healthy job is handled, the other two only counted
    assert report.failed == ["healthy-1"]
    assert sorted(report.errors) == ["malformed-1", "throttled-1"]
    # And after the bounded number of runs they are ended
    for _ in range(runs_before_giving_up - 1):
        report = reconcile_overdue_jobs(deps)
    assert sorted(report.failed) == ["malformed-1", "throttled-1"]
    assert jobs.failed["malformed-1"] == jobs.failed["throttled-1"] == "RECONCILE_FAILED"


def test_a_job_the_reconciler_ends_tells_its_caller_like_the_workflow_would() -> None:
    # Given an overdue job never sent upstream, whose caller gave a reference, a task token
    # and a webhook
    callbacks = {"reference": "order-42", "task_token": "tok", "webhook_url": "https://h.test/w"}
    jobs = FakeJobs(row("lost-1", callbacks=callbacks))
    notifier = FakeNotifier()
    # When the reconciler ends it
    reconcile_overdue_jobs(collaborators(jobs, notifier=notifier))
    # Then one Failed completion goes on the bus, to the waiting task and to the webhook
    assert jobs.failed == {"lost-1": "NOT_SUBMITTED"}
    (published,) = notifier.published
    assert published.detail_type == "Image Generation Failed"
    assert (published.detail.reference, published.detail.error_code) == (
        "order-42",
        "NOT_SUBMITTED",
    )
    assert notifier.answered == [("tok", published)]
    assert notifier.webhooks == [("https://h.test/w", published)]


# --------------------------------------------------------------------------- Express executions


class UndescribableWorkflow(FakeWorkflow):
    """Express: DescribeExecution refuses every execution (AWS does)."""

    def status(self, name: str) -> str | None:
        raise AssertionError("an Express execution cannot be described")


def test_an_express_job_is_left_alone_while_an_execution_could_still_run() -> None:
    # Given an Express job whose deadline passed 4 minutes ago (a hand-over just before it
    # may still run, up to 5 minutes)
    jobs = FakeJobs(
        row("x-1", upstream_id="u1", deadline_at=(NOW - timedelta(minutes=4)).isoformat())
    )
    workflow = UndescribableWorkflow(express=True)
    # When the reconciler runs / Then it waits, without asking Step Functions or the upstream
    report = reconcile_overdue_jobs(collaborators(jobs, workflow))
    assert report.left_running == ["x-1"]


def test_an_express_job_past_any_executions_life_is_resumed_once_per_run() -> None:
    # Given an Express job finished upstream, its deadline an hour ago
    jobs = FakeJobs(row("x-2", upstream_id="u1"))
    workflow = UndescribableWorkflow(express=True)
    urls = ["https://cdn.imagepipeline.io/u1/0.png"]
    upstream = FakeUpstream({"u1": UpstreamAnswer(status=JobStatus.SUCCESS, download_urls=urls)})
    # When the reconciler runs
    report = reconcile_overdue_jobs(collaborators(jobs, workflow, upstream))
    # Then it resumes it under a new name, and notes the resume on the row
    assert report.resumed == ["x-2"]
    ((name, _),) = workflow.started
    assert name.startswith("x-2-resume-")
    assert jobs.get("x-2").updated_at == NOW
    # And the next run, while the resumed execution may still be running, leaves it alone
    again = reconcile_overdue_jobs(collaborators(jobs, workflow, upstream))
    assert again.left_running == ["x-2"]
    assert len(workflow.started) == 1

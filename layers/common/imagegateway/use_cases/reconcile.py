"""Use case, scheduled: end or resume every job still PENDING past its deadline plus the margin,
so none stays PENDING forever (its execution never started, or ended without recording a result:
machine timeout, abort, a crash).

Each job succeeds or fails on its own: an error on one (a malformed row, a throttled
DescribeExecution, an odd upstream answer) is counted on that job and the run goes on; a job that
keeps failing is ended RECONCILE_FAILED after `reconcile_max_attempts` runs. A run stops taking
jobs before its time is up; the next run continues.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal

from pydantic import BaseModel, Field

from imagegateway.domain.base import JobStatus
from imagegateway.domain.errors import (
    NOT_SUBMITTED,
    PUBLIC_MESSAGES,
    RECONCILE_FAILED,
    TIMED_OUT,
    UPSTREAM_FAILURE,
    WORKFLOW_FAILED,
    IncompleteResultError,
    UpstreamError,
    UpstreamOutcomeUnknownError,
)
from imagegateway.domain.image_requests import samples_of
from imagegateway.domain.image_set import select_image_urls
from imagegateway.domain.records import JobRecord
from imagegateway.domain.tickets import JobTicket
from imagegateway.platform.observability import logger, metrics
from imagegateway.platform.time_budget import remaining_seconds
from imagegateway.use_cases.completion import finish_outside_workflow
from imagegateway.use_cases.ports import Ports

# Past this, a job whose upstream still cannot be asked is ended rather than retried forever.
GIVE_UP_AFTER = timedelta(days=1)
# A run stops taking new jobs with less time than this left (the next run goes on).
RECONCILE_SECONDS_PER_JOB = 15.0

Outcome = Literal["resumed", "failed", "left_running", "retry_later", "errors"]


class ReconcileReport(BaseModel):
    examined: int = 0
    resumed: list[str] = Field(default_factory=list)
    failed: list[str] = Field(default_factory=list)
    left_running: list[str] = Field(default_factory=list)
    retry_later: list[str] = Field(default_factory=list)
    errors: list[str] = Field(default_factory=list)
    deferred: int = 0


def reconcile_overdue_jobs(deps: Ports) -> ReconcileReport:
    now = deps.clock()
    report = ReconcileReport()
    cutoff = now - timedelta(seconds=deps.settings.reconcile_margin_seconds)
    for item in deps.jobs.overdue(deadline_before=cutoff):
        if remaining_seconds() < RECONCILE_SECONDS_PER_JOB:
            report.deferred += 1
            continue
        job_id = str(item.get("job_id", ""))
        report.examined += 1
        logger.append_keys(job_id=job_id)
        outcome: Outcome
        try:
            outcome = _reconcile(deps.jobs.parse(item), deps, now)
        except Exception:  # one job's failure must not stop the others
            logger.exception("could not reconcile an overdue job")
            metrics.add_metric(name="ReconcileErrors", unit="Count", value=1)
            outcome = _count_failure(job_id, deps, now)
        getattr(report, outcome).append(job_id)
        logger.info("reconciled an overdue job", extra={"outcome": outcome})
    logger.remove_keys(["job_id"])
    reconciled = len(report.resumed) + len(report.failed)
    metrics.add_metric(name="JobsReconciled", unit="Count", value=reconciled)
    return report


def _count_failure(job_id: str, deps: Ports, now: datetime) -> Outcome:
    try:
        failures = deps.jobs.count_reconcile_failure(job_id, now=now)
        if failures >= deps.settings.reconcile_max_attempts:
            if deps.jobs.mark_failed(
                job_id,
                code=RECONCILE_FAILED,
                message="the gateway could not determine this job's outcome; "
                "contact the gateway's operator with the job id",
                now=now,
            ):
                _tell_given_up(job_id, deps)
            return "failed"
    except Exception:
        logger.exception("could not count a reconciler failure on the job")
    return "errors"


def _tell_given_up(job_id: str, deps: Ports) -> None:
    """This write ended the job: its caller hears of it like any other ending, if its row can be
    read at all (a malformed one cannot: it stays ended, untold, and logged)."""
    try:
        finish_outside_workflow(deps.jobs.get(job_id), deps)
    except Exception:
        logger.exception("could not tell the end of a job the reconciler gave up on")


def _fail(record: JobRecord, deps: Ports, now: datetime, code: str, message: str) -> Outcome:
    """End the job, unless it ended since `record` was read (a cancel, the workflow): the write
    is conditional, and only the write that ends the job tells anyone."""
    if deps.jobs.mark_failed(record.job_id, code=code, message=message, now=now):
        finish_outside_workflow(deps.jobs.get(record.job_id), deps)
    return "failed"


def _fail_unsent(record: JobRecord, deps: Ports, now: datetime, message: str) -> Outcome:
    """NOT_SUBMITTED ("nothing was charged") only while nobody holds the submit claim: a run
    that claimed it since `record` was read may be POSTing; the next run decides again."""
    ended = deps.jobs.mark_not_started(record.job_id, code=NOT_SUBMITTED, message=message, now=now)
    if ended:
        finish_outside_workflow(deps.jobs.get(record.job_id), deps)
        return "failed"
    return "retry_later"


def _reconcile(record: JobRecord, deps: Ports, now: datetime) -> Outcome:
    # No execution of the job starts after its deadline, except a resume (which touches the row).
    quiet_since = max(record.deadline_at, record.updated_at)
    if deps.workflow.may_be_running(record.job_id, quiet_since=quiet_since, now=now):
        return "left_running"  # the loop's deadline or the machine's timeout will end it
    if not record.upstream_id:
        if record.submit_started_at is None:
            message = (
                "the gateway could not send the job upstream; nothing was charged, submit it again"
            )
            return _fail_unsent(record, deps, now, message)
        message = (
            "the gateway stopped while sending the job upstream; the upstream may have "
            "accepted (and charged) it"
        )
        return _fail(record, deps, now, UpstreamOutcomeUnknownError.code, message)
    try:
        answer = deps.upstream.status(record.kind, record.upstream_id)
    except UpstreamError as exc:
        if now - record.deadline_at < GIVE_UP_AFTER:
            return "retry_later"
        return _fail(record, deps, now, exc.code, exc.message)
    if answer.status is JobStatus.SUCCESS and answer.download_urls:
        expected = samples_of(record.request)
        try:
            urls = select_image_urls(answer.download_urls, expected)
        except IncompleteResultError as exc:
            return _fail(record, deps, now, exc.code, exc.message)
        ticket = JobTicket(
            job_id=record.job_id,
            run_token=record.run_token or "",
            upstream_id=record.upstream_id,
            status=JobStatus.SUCCESS,
            download_urls=urls,
            expected_images=expected,
            wait_seconds=1,
            deadline_at=record.deadline_at,
            upstream_completed_at=now,
        )
        if deps.workflow.resume(ticket, now=now):
            deps.jobs.touch(record.job_id, now=now)
            return "resumed"
    if answer.status is JobStatus.FAILURE:
        return _fail(record, deps, now, UPSTREAM_FAILURE, answer.error or "the upstream failed")
    if answer.status is JobStatus.PENDING:
        return _fail(record, deps, now, TIMED_OUT, PUBLIC_MESSAGES[TIMED_OUT])
    return _fail(record, deps, now, WORKFLOW_FAILED, PUBLIC_MESSAGES[WORKFLOW_FAILED])

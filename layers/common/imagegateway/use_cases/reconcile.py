"""Use case, scheduled (every minute): what keeps every job moving and every ending told.

1. A job whose row exists but whose workflow never started (its submit died between the row and
   StartExecution) is started, or ended WORKFLOW_NOT_STARTED and told if it cannot be, a little
   after its row was written (`start_grace_seconds`): not 17 minutes later at its deadline.
2. An ending not all told (the bus, the webhook queue or Step Functions refused at the ending)
   is told: whatever its end still owes (`domain.tellings`), at least once.
3. Every job still PENDING past its deadline plus the margin is ended or resumed, so none stays
   PENDING forever (its execution ended without recording a result: machine timeout, abort, a
   crash).

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
    FailureCode,
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
from imagegateway.use_cases.completion import announce, conclude
from imagegateway.use_cases.ports import Ports

# Past this, a job whose upstream still cannot be asked is ended rather than retried forever.
GIVE_UP_AFTER = timedelta(days=1)
# A run stops taking new jobs with less time than this left (the next run goes on).
RECONCILE_SECONDS_PER_JOB = 15.0

Outcome = Literal["resumed", "failed", "left_running", "retry_later", "errors"]


class ReconcileReport(BaseModel):
    started: list[str] = Field(default_factory=list)
    told: list[str] = Field(default_factory=list)
    examined: int = 0
    resumed: list[str] = Field(default_factory=list)
    failed: list[str] = Field(default_factory=list)
    left_running: list[str] = Field(default_factory=list)
    retry_later: list[str] = Field(default_factory=list)
    errors: list[str] = Field(default_factory=list)
    deferred: int = 0


def reconcile_jobs(deps: Ports) -> ReconcileReport:
    """One scheduled run: the overdue, then the never started, then the untold."""
    report = reconcile_overdue_jobs(deps)
    start_never_started(deps, report)
    tell_untold(deps, report)
    return report


def start_never_started(deps: Ports, report: ReconcileReport) -> None:
    """Start each job no workflow run has reached some time after its row was written; if Step
    Functions will not start it, end it WORKFLOW_NOT_STARTED (nothing was sent) and tell it."""
    now = deps.clock()
    cutoff = now - timedelta(seconds=deps.settings.start_grace_seconds)
    for item in deps.jobs.never_started(created_before=cutoff):
        if remaining_seconds() < RECONCILE_SECONDS_PER_JOB:
            return
        job_id = str(item.get("job_id", ""))
        logger.append_keys(job_id=job_id)
        try:
            if _start(deps.jobs.parse(item), deps, now):
                report.started.append(job_id)
        except Exception:  # one job's failure must not stop the others; the next run retries
            logger.exception("could not start a job whose workflow never started")
            metrics.add_metric(name="ReconcileErrors", unit="Count", value=1)
            report.errors.append(job_id)
    logger.remove_keys(["job_id"])


def _start(record: JobRecord, deps: Ports, now: datetime) -> bool:
    if record.status is not JobStatus.PENDING or record.deadline_at <= now:
        return False  # ended meanwhile, or past its deadline (the overdue path ends it)
    ticket = JobTicket(
        job_id=record.job_id,
        run_token=record.run_token or "",
        status=JobStatus.PENDING,
        expected_images=samples_of(record.request),
        wait_seconds=1,
        deadline_at=record.deadline_at,
    )
    logger.warning("no workflow run reached the job; starting it")
    metrics.add_metric(name="JobsStartedLate", unit="Count", value=1)
    # Standard: a running execution of its name is not started twice; Express: a second
    # execution at most, and never a second POST (the submit claim).
    if deps.workflow.start(ticket):
        # Once: should this execution die too, the job's deadline ends it (the overdue path).
        deps.jobs.mark_workflow_began(record.job_id, now=now)
        return True
    code = FailureCode.WORKFLOW_NOT_STARTED
    if deps.jobs.mark_not_started(record.job_id, code=code, message=PUBLIC_MESSAGES[code], now=now):
        conclude(deps.jobs.get(record.job_id), deps)
    return True


def tell_untold(deps: Ports, report: ReconcileReport) -> None:
    """Tell whatever the end of each job ended a while ago still owes its callers."""
    cutoff = deps.clock() - timedelta(seconds=deps.settings.tell_grace_seconds)
    for job_id in deps.jobs.untold(ended_before=cutoff):
        if remaining_seconds() < RECONCILE_SECONDS_PER_JOB:
            return
        logger.append_keys(job_id=job_id)
        try:
            announce(deps.jobs.get(job_id), deps)
            report.told.append(job_id)
        except Exception:  # one job's failure must not stop the others; the next run retries
            logger.exception("could not tell a job's end")
            metrics.add_metric(name="ReconcileErrors", unit="Count", value=1)
            report.errors.append(job_id)
    if report.told:
        logger.info("told endings left untold", extra={"jobs": len(report.told)})
        metrics.add_metric(name="EndingsToldLate", unit="Count", value=len(report.told))
    logger.remove_keys(["job_id"])


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
        conclude(deps.jobs.get(job_id), deps)
    except Exception:
        logger.exception("could not tell the end of a job the reconciler gave up on")


def _fail(record: JobRecord, deps: Ports, now: datetime, code: str, message: str) -> Outcome:
    """End the job, unless it ended since `record` was read (a cancel, the workflow): the write
    is conditional, and only the write that ends the job tells anyone."""
    if deps.jobs.mark_failed(record.job_id, code=code, message=message, now=now):
        conclude(deps.jobs.get(record.job_id), deps)
    return "failed"


def _fail_unsent(record: JobRecord, deps: Ports, now: datetime, message: str) -> Outcome:
    """NOT_SUBMITTED ("nothing was charged") only while nobody holds the submit claim: a run
    that claimed it since `record` was read may be POSTing; the next run decides again."""
    ended = deps.jobs.mark_not_started(record.job_id, code=NOT_SUBMITTED, message=message, now=now)
    if ended:
        conclude(deps.jobs.get(record.job_id), deps)
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

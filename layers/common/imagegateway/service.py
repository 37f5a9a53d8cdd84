"""The gateway's operations, one per function; handlers only parse events and shape answers."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel, Field

from imagegateway.aws import error_code, sfn_client
from imagegateway.errors import ERROR_CODES, JobNotFoundError, UpstreamError, UpstreamProtocolError
from imagegateway.images import ImageStore
from imagegateway.jobs import JobStore
from imagegateway.models import (
    CaughtError,
    Failure,
    ImageView,
    JobRecord,
    JobStatus,
    JobTicket,
    JobView,
    StoredImages,
    Text2ImageRequest,
    Timings,
)
from imagegateway.observability import logger, metrics
from imagegateway.polling import deadline_passed, next_wait_seconds
from imagegateway.settings import get_settings
from imagegateway.upstream import UpstreamClient

UPSTREAM_REJECTED = "UPSTREAM_REJECTED"
UPSTREAM_FAILURE = "UPSTREAM_FAILURE"
TIMED_OUT = "TIMED_OUT"
# Errors Step Functions itself raises, by the name a Catch sees.
STATES_ERROR_CODES = {"States.Timeout": TIMED_OUT, "States.HeartbeatTimeout": TIMED_OUT}


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_job_id() -> str:
    """Unguessable (122 random bits) and valid as a Step Functions execution name."""
    return str(uuid.uuid4())


def submit_job(request: Text2ImageRequest, *, owner: str) -> JobView:
    """Record the job, send it upstream exactly once, and start its workflow."""
    settings = get_settings()
    jobs = JobStore(settings)
    job_id = new_job_id()
    logger.append_keys(job_id=job_id)
    now = utcnow()
    deadline_at = now + timedelta(seconds=settings.job_deadline_seconds)
    jobs.create(
        job_id=job_id,
        owner=owner,
        request=request.upstream_body(),
        now=now,
        deadline_at=deadline_at,
    )
    try:
        answer = UpstreamClient(settings).submit(request)
    except UpstreamError as exc:
        jobs.mark_failed(job_id, code=exc.code, message=exc.message, now=utcnow())
        metrics.add_metric(name="UpstreamSubmitErrors", unit="Count", value=1)
        exc.job_id = job_id
        raise
    if answer.status is JobStatus.FAILURE:
        message = answer.error or "the upstream refused the job"
        jobs.mark_failed(job_id, code=UPSTREAM_REJECTED, message=message, now=utcnow())
        logger.info("upstream refused the job", extra={"error": message})
        return JobView(
            status=JobStatus.FAILURE, id=job_id, error=message, error_code=UPSTREAM_REJECTED
        )
    upstream_id = str(answer.id)
    jobs.mark_accepted(job_id, upstream_id=upstream_id, now=utcnow())
    logger.info("upstream accepted the job", extra={"upstream_id": upstream_id})
    metrics.add_metric(name="JobsAccepted", unit="Count", value=1)
    ticket = JobTicket(
        job_id=job_id,
        upstream_id=upstream_id,
        status=answer.status,
        download_urls=answer.download_urls,
        expected_images=request.expected_images,
        wait_seconds=next_wait_seconds(
            polls=0,
            now=now,
            deadline_at=deadline_at,
            initial=settings.poll_interval_seconds,
            maximum=settings.poll_max_interval_seconds,
        ),
        deadline_at=deadline_at,
        upstream_completed_at=utcnow() if answer.status is JobStatus.SUCCESS else None,
    )
    start_workflow(ticket)
    return JobView(status=JobStatus.PENDING, id=job_id)


def start_workflow(ticket: JobTicket, *, name: str | None = None) -> bool:
    """Start the job's execution, named by the job id so a second start cannot fork the job.

    A failure is logged and reported, not raised: the upstream has accepted (and charged) the
    job, so the caller still gets its id, and the reconciler resumes jobs whose execution never
    started.
    """
    settings = get_settings()
    try:
        sfn_client().start_execution(
            stateMachineArn=settings.state_machine_arn,
            name=name or ticket.job_id,
            input=json.dumps(ticket.to_state()),
        )
    except (ClientError, BotoCoreError) as exc:
        if isinstance(exc, ClientError) and error_code(exc) == "ExecutionAlreadyExists":
            return True
        logger.exception("could not start the job's workflow; the reconciler will resume it")
        metrics.add_metric(name="WorkflowStartFailures", unit="Count", value=1)
        return False
    return True


def check_job(ticket: JobTicket) -> JobTicket:
    """One status check: the upstream's answer, the next wait and whether the deadline passed."""
    settings = get_settings()
    if not ticket.upstream_id:
        raise UpstreamProtocolError("the job has no upstream id to check")
    answer = UpstreamClient(settings).status(ticket.upstream_id)
    now = utcnow()
    polls = ticket.polls + 1
    update: dict[str, object] = {
        "status": answer.status,
        "polls": polls,
        "deadline_passed": deadline_passed(now=now, deadline_at=ticket.deadline_at),
        "wait_seconds": next_wait_seconds(
            polls=polls,
            now=now,
            deadline_at=ticket.deadline_at,
            initial=settings.poll_interval_seconds,
            maximum=settings.poll_max_interval_seconds,
        ),
    }
    if answer.status is JobStatus.SUCCESS:
        if not answer.download_urls:
            raise UpstreamProtocolError("the upstream reported SUCCESS without download_urls")
        update |= {"download_urls": answer.download_urls, "upstream_completed_at": now}
    elif answer.status is JobStatus.FAILURE:
        update["failure"] = Failure(
            code=UPSTREAM_FAILURE, message=answer.error or "the upstream reported FAILURE"
        )
    logger.info("checked the upstream", extra={"upstream_status": answer.status, "polls": polls})
    return ticket.model_copy(update=update)


def store_job_images(ticket: JobTicket) -> StoredImages:
    """Copy every image into S3 and mark the job SUCCESS. Safe to retry: keys are deterministic."""
    settings = get_settings()
    images = ImageStore(settings).copy_all(ticket.job_id, ticket.download_urls)
    now = utcnow()
    JobStore(settings).mark_succeeded(
        ticket.job_id,
        images=images,
        upstream_completed_at=ticket.upstream_completed_at or now,
        now=now,
    )
    logger.info("stored the job's images", extra={"images": len(images)})
    metrics.add_metric(name="ImagesStored", unit="Count", value=len(images))
    return StoredImages(job_id=ticket.job_id, images=images)


def failure_from(ticket: JobTicket) -> Failure:
    """The reason a job failed: set by a state, or the error a Catch caught."""
    if ticket.failure is not None:
        return ticket.failure
    caught = ticket.error or CaughtError(error="States.Unknown", cause="")
    return Failure(code=_code_for(caught.error), message=_message_from_cause(caught))


def record_failure(ticket: JobTicket) -> Failure:
    failure = failure_from(ticket)
    recorded = JobStore().mark_failed(
        ticket.job_id, code=failure.code, message=failure.message, now=utcnow()
    )
    logger.info(
        "job failed",
        extra={"error_code": failure.code, "error": failure.message, "recorded": recorded},
    )
    metrics.add_metric(name="JobsFailed", unit="Count", value=1)
    return failure


def _code_for(error_name: str) -> str:
    if error_name in STATES_ERROR_CODES:
        return STATES_ERROR_CODES[error_name]
    return ERROR_CODES.get(error_name, "INTERNAL_ERROR")


def _message_from_cause(caught: CaughtError) -> str:
    # A Lambda task's Cause is the JSON error the runtime reported; keep its message only.
    try:
        cause = json.loads(caught.cause)
    except ValueError:
        cause = None
    if isinstance(cause, dict) and cause.get("errorMessage"):
        return str(cause["errorMessage"])
    return caught.cause or caught.error


def job_view(job_id: str, *, owner: str) -> JobView:
    """The caller's view of its job, with freshly presigned URLs. Another caller's job is
    reported as unknown, so ids cannot be probed."""
    settings = get_settings()
    record = JobStore(settings).get(job_id)
    if record.owner != owner:
        raise JobNotFoundError(f"no job {job_id}")
    logger.append_keys(job_id=job_id)
    view = JobView(status=record.status, id=job_id, timings=_timings(record))
    if record.status is JobStatus.SUCCESS:
        store = ImageStore(settings)
        view.images = [
            ImageView(
                url=store.presigned_url(image.key),
                content_type=image.content_type,
                size=image.size,
                sha256=image.sha256,
            )
            for image in record.images
        ]
        view.download_urls = [image.url for image in view.images]
    elif record.status is JobStatus.FAILURE:
        view.error = record.error_message or "the job failed"
        view.error_code = record.error_code
    return view


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    return round((end - start).total_seconds(), 3) if start and end else None


def _timings(record: JobRecord) -> Timings:
    return Timings(
        created_at=record.created_at,
        accepted_at=record.accepted_at,
        upstream_completed_at=record.upstream_completed_at,
        completed_at=record.completed_at,
        queued_seconds=_seconds(record.created_at, record.accepted_at),
        upstream_seconds=_seconds(
            record.accepted_at or record.created_at, record.upstream_completed_at
        ),
        copy_seconds=_seconds(record.upstream_completed_at, record.completed_at),
        total_seconds=_seconds(record.created_at, record.completed_at),
    )


# --- the reconciler -------------------------------------------------------------------------

SUBMIT_INTERRUPTED = "SUBMIT_INTERRUPTED"
# Past this, a job whose upstream still cannot be asked is ended rather than retried forever.
GIVE_UP_AFTER = timedelta(days=1)


class ReconcileReport(BaseModel):
    examined: int = 0
    resumed: list[str] = Field(default_factory=list)
    failed: list[str] = Field(default_factory=list)
    left_running: list[str] = Field(default_factory=list)
    retry_later: list[str] = Field(default_factory=list)


def execution_arn(name: str) -> str:
    machine = get_settings().state_machine_arn
    return machine.replace(":stateMachine:", ":execution:", 1) + f":{name}"


def execution_status(name: str) -> str | None:
    """RUNNING / SUCCEEDED / FAILED / TIMED_OUT / ABORTED, or None if it never started."""
    try:
        described = sfn_client().describe_execution(executionArn=execution_arn(name))
    except ClientError as exc:
        if error_code(exc) == "ExecutionDoesNotExist":
            return None
        raise
    return str(described["status"])


def reconcile_overdue_jobs() -> ReconcileReport:
    """End or resume every job still PENDING past its deadline plus the margin, so none stays
    PENDING forever: its execution never started (the upstream accepted, then the start
    failed), or ended without recording a result (machine timeout, abort, a crash)."""
    settings = get_settings()
    now = utcnow()
    jobs = JobStore(settings)
    report = ReconcileReport()
    cutoff = now - timedelta(seconds=settings.reconcile_margin_seconds)
    for record in jobs.overdue(deadline_before=cutoff):
        report.examined += 1
        logger.append_keys(job_id=record.job_id)
        outcome = _reconcile(record, jobs, now)
        getattr(report, outcome).append(record.job_id)
        logger.info("reconciled an overdue job", extra={"outcome": outcome})
    logger.remove_keys(["job_id"])
    return report


def _reconcile(record: JobRecord, jobs: JobStore, now: datetime) -> str:
    statuses = {name: execution_status(name) for name in (record.job_id, _resume_name(record))}
    if "RUNNING" in statuses.values():
        return "left_running"  # the loop's deadline or the machine's timeout will end it
    if not record.upstream_id:
        jobs.mark_failed(
            record.job_id,
            code=SUBMIT_INTERRUPTED,
            message="the gateway stopped before the upstream confirmed the job; submit it again",
            now=now,
        )
        return "failed"
    try:
        answer = UpstreamClient().status(record.upstream_id)
    except UpstreamError as exc:
        if now - record.deadline_at < GIVE_UP_AFTER:
            return "retry_later"
        jobs.mark_failed(record.job_id, code=exc.code, message=exc.message, now=now)
        return "failed"
    if answer.status is JobStatus.SUCCESS and answer.download_urls:
        free_name = next((name for name, status in statuses.items() if status is None), None)
        ticket = JobTicket(
            job_id=record.job_id,
            upstream_id=record.upstream_id,
            status=JobStatus.SUCCESS,
            download_urls=answer.download_urls,
            expected_images=len(answer.download_urls),
            wait_seconds=1,
            deadline_at=record.deadline_at,
            upstream_completed_at=now,
        )
        if free_name is not None and start_workflow(ticket, name=free_name):
            return "resumed"
    if answer.status is JobStatus.FAILURE:
        code, message = UPSTREAM_FAILURE, answer.error or "the upstream reported FAILURE"
    elif answer.status is JobStatus.PENDING:
        code, message = TIMED_OUT, "the upstream did not finish the job before its deadline"
    else:
        code, message = "WORKFLOW_FAILED", "the job's workflow ended without storing its images"
    jobs.mark_failed(record.job_id, code=code, message=message, now=now)
    return "failed"


def _resume_name(record: JobRecord) -> str:
    return f"{record.job_id}-resume"

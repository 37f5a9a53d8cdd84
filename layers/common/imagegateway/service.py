"""The gateway's operations, one per function; handlers only parse events and shape answers."""

from __future__ import annotations

import json
import math
import secrets
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel, Field

from imagegateway.aws import error_code, sfn_client
from imagegateway.errors import (
    ERROR_CODES,
    INTERNAL_ERROR,
    NOT_SUBMITTED,
    PUBLIC_MESSAGES,
    RECONCILE_FAILED,
    STATES_ERROR_CODES,
    TIMED_OUT,
    UPSTREAM_FAILURE,
    UPSTREAM_REJECTED,
    WORKFLOW_FAILED,
    ConfigurationError,
    ForeignTicketError,
    IncompleteResultError,
    JobNotFoundError,
    UpstreamAuthError,
    UpstreamError,
    UpstreamOutcomeUnknownError,
    UpstreamProtocolError,
    UpstreamRateLimitedError,
    UpstreamUnavailableError,
)
from imagegateway.images import ImageStore
from imagegateway.jobs import JobStore
from imagegateway.models import (
    CaughtError,
    Failure,
    ImageView,
    JobKind,
    JobRecord,
    JobStatus,
    JobTicket,
    JobView,
    StoredImages,
    Timings,
)
from imagegateway.observability import logger, metrics
from imagegateway.polling import deadline_passed, next_wait_seconds
from imagegateway.settings import Settings, get_settings
from imagegateway.time_budget import remaining_seconds
from imagegateway.upstream import UpstreamClient, upstream_api_key

# Errors whose message was written by the gateway for callers; any other error's text (botocore,
# a crash) stays in the logs and the caller reads PUBLIC_MESSAGES for its code.
CALLER_SAFE_ERRORS = frozenset(ERROR_CODES) - {"GatewayError", "ConfigurationError"}
# Waits between submit attempts the upstream refused without taking the job (429, unreachable).
SUBMIT_RETRY_FIRST_WAIT_SECONDS = 5
SUBMIT_RETRY_MAX_WAIT_SECONDS = 120


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_job_id() -> str:
    """Unguessable (122 random bits) and valid as a Step Functions execution name."""
    return str(uuid.uuid4())


def submit_job(kind: JobKind, body: dict[str, Any], *, owner: str) -> JobView:
    """Record the job and start its workflow, which sends it upstream exactly once.

    The caller's answer never waits on the upstream: an upstream POST can take longer than
    API Gateway's 30 s, and a caller cut off without a job id would submit again (and pay
    twice). Nothing is stored when the gateway cannot call the upstream at all (no API key).
    """
    settings = get_settings()
    upstream_api_key(settings)  # a first deploy without a key: 503 now, no stray job row
    jobs = JobStore(settings)
    job_id = new_job_id()
    logger.append_keys(job_id=job_id)
    now = utcnow()
    deadline_at = now + timedelta(seconds=settings.job_deadline_seconds)
    run_token = secrets.token_urlsafe(24)
    jobs.create(
        job_id=job_id,
        owner=owner,
        kind=kind,
        request=body,
        now=now,
        deadline_at=deadline_at,
        run_token=run_token,
    )
    ticket = JobTicket(
        job_id=job_id,
        run_token=run_token,
        status=JobStatus.PENDING,
        expected_images=_samples(body),
        wait_seconds=1,
        deadline_at=deadline_at,
    )
    start_workflow(ticket)
    metrics.add_metric(name="JobsAccepted", unit="Count", value=1)
    return JobView(status=JobStatus.PENDING, id=job_id)


def start_workflow(ticket: JobTicket, *, name: str | None = None) -> bool:
    """Start the job's execution, named by the job id so a second start cannot fork the job.

    A failure is logged and reported, not raised: the job row exists and the caller gets its
    id either way (the start may have happened despite the error); the reconciler ends a job
    whose execution never started as NOT_SUBMITTED (nothing was sent upstream).
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
        logger.exception("could not start the job's workflow; the reconciler will end it")
        metrics.add_metric(name="WorkflowStartFailures", unit="Count", value=1)
        return False
    return True


def verified_record(ticket: JobTicket, jobs: JobStore) -> JobRecord:
    """The ticket's job row, if the ticket is the gateway's own (its run token matches)."""
    try:
        record = jobs.get(ticket.job_id)
    except JobNotFoundError as exc:
        raise ForeignTicketError("the workflow's input names no job of this gateway") from exc
    if not record.run_token or not secrets.compare_digest(record.run_token, ticket.run_token):
        logger.warning("refused a workflow input whose run token does not match its job")
        metrics.add_metric(name="ForeignTickets", unit="Count", value=1)
        raise ForeignTicketError("the workflow's input does not match its job")
    if ticket.upstream_id and record.upstream_id and ticket.upstream_id != record.upstream_id:
        raise ForeignTicketError("the workflow's input does not match its job's upstream id")
    return record


def select_image_urls(urls: list[str], expected: int) -> list[str]:
    """The images to keep: exactly the `samples` the job asked (and paid) for.

    Duplicate URLs count once; fewer distinct URLs than asked is a FAILURE (never a partial
    SUCCESS); more than asked keeps the first `expected` (extras are logged, not stored).
    """
    distinct = list(dict.fromkeys(url for url in urls if url))
    if len(distinct) < expected:
        raise IncompleteResultError(
            f"the upstream reported SUCCESS with {len(distinct)} of the {expected} images "
            "the job asked for"
        )
    if len(distinct) > expected:
        logger.warning(
            "the upstream returned more images than asked for; keeping the first ones",
            extra={"returned": len(distinct), "expected": expected},
        )
    return distinct[:expected]


def _poll_wait(settings: Settings, *, polls: int, now: datetime, deadline_at: datetime) -> int:
    return next_wait_seconds(
        polls=polls,
        now=now,
        deadline_at=deadline_at,
        initial=settings.poll_interval_seconds,
        maximum=settings.poll_max_interval_seconds,
    )


def _capped_wait(seconds: float, *, now: datetime, deadline_at: datetime) -> int:
    """A wait in the state machine: at least 1 s, never past the job's deadline."""
    remaining = math.ceil((deadline_at - now).total_seconds())
    return max(1, min(math.ceil(seconds), remaining))


def submit_upstream(ticket: JobTicket) -> JobTicket:
    """The workflow's first task: POST the job's stored request upstream, at most once.

    The request comes from the job row, never from the execution input. A claim on the row
    is taken before the POST: a re-run (Step Functions retrying a crashed task) that finds
    it never POSTs again, and ends the job UPSTREAM_OUTCOME_UNKNOWN unless the first run
    recorded the upstream's id. The claim is released only when the POST provably never
    reached the upstream (connection refused, 429), and the job then waits and tries again.
    """
    settings = get_settings()
    jobs = JobStore(settings)
    record = verified_record(ticket, jobs)
    now = utcnow()
    if record.upstream_id:  # a re-run, or a resume: the upstream already has the job
        if ticket.status is JobStatus.SUCCESS and ticket.download_urls:
            return ticket  # the reconciler resumed a finished job: store it at once
        return ticket.model_copy(
            update={
                "upstream_id": record.upstream_id,
                "status": JobStatus.PENDING,
                "wait_seconds": 1,
            }
        )
    if record.status is not JobStatus.PENDING:
        failure = Failure(
            code=record.error_code or INTERNAL_ERROR,
            message=record.error_message or "the job already ended",
        )
        return ticket.model_copy(update={"status": JobStatus.FAILURE, "failure": failure})
    if deadline_passed(now=now, deadline_at=ticket.deadline_at):
        failure = Failure(
            code=NOT_SUBMITTED,
            message="the upstream could not take the job before its deadline; "
            "nothing was charged, submit it again",
        )
        return ticket.model_copy(update={"status": JobStatus.FAILURE, "failure": failure})
    if not jobs.claim_submit(ticket.job_id, run_token=ticket.run_token, now=now):
        raise UpstreamOutcomeUnknownError(
            "an earlier attempt to send this job upstream was interrupted after it may have "
            "reached the upstream; it may have accepted (and charged) the job"
        )
    try:
        answer = UpstreamClient(settings).submit(record.kind, record.request)
    except UpstreamUnavailableError as exc:  # nothing was sent, or the upstream refused it
        jobs.release_submit(ticket.job_id)
        return _submit_later(ticket, exc, now=utcnow())
    except (ConfigurationError, UpstreamAuthError):
        jobs.release_submit(ticket.job_id)  # nothing was sent: the key is missing or refused
        metrics.add_metric(name="UpstreamSubmitErrors", unit="Count", value=1)
        raise
    except UpstreamError:
        metrics.add_metric(name="UpstreamSubmitErrors", unit="Count", value=1)
        raise
    now = utcnow()
    if answer.status is JobStatus.FAILURE:
        message = answer.error or "the upstream refused the job"
        logger.info("upstream refused the job", extra={"error": message})
        failure = Failure(code=UPSTREAM_REJECTED, message=message)
        return ticket.model_copy(update={"status": JobStatus.FAILURE, "failure": failure})
    upstream_id = str(answer.id)
    jobs.mark_accepted(ticket.job_id, upstream_id=upstream_id, now=now)
    logger.info("upstream accepted the job", extra={"upstream_id": upstream_id})
    metrics.add_metric(name="UpstreamSubmits", unit="Count", value=1)
    update: dict[str, object] = {
        "upstream_id": upstream_id,
        "status": answer.status,
        "submit_attempts": ticket.submit_attempts + 1,
        "wait_seconds": _poll_wait(settings, polls=0, now=now, deadline_at=ticket.deadline_at),
    }
    if answer.status is JobStatus.SUCCESS:
        update |= {
            "download_urls": select_image_urls(answer.download_urls, ticket.expected_images),
            "upstream_completed_at": now,
        }
    return ticket.model_copy(update=update)


def _submit_later(ticket: JobTicket, exc: UpstreamUnavailableError, *, now: datetime) -> JobTicket:
    attempts = ticket.submit_attempts + 1
    backoff = min(
        SUBMIT_RETRY_MAX_WAIT_SECONDS, SUBMIT_RETRY_FIRST_WAIT_SECONDS * 2 ** (attempts - 1)
    )
    asked = exc.retry_after if isinstance(exc, UpstreamRateLimitedError) else None
    wait = _capped_wait(
        asked if asked is not None else backoff, now=now, deadline_at=ticket.deadline_at
    )
    logger.warning(
        "the upstream did not take the job; trying again later",
        extra={"error": exc.message, "attempts": attempts, "wait_seconds": wait},
    )
    metrics.add_metric(name="UpstreamSubmitDeferred", unit="Count", value=1)
    return ticket.model_copy(
        update={
            "status": JobStatus.PENDING,
            "submit_attempts": attempts,
            "wait_seconds": wait,
            "deadline_passed": deadline_passed(now=now, deadline_at=ticket.deadline_at)
            or now + timedelta(seconds=wait) >= ticket.deadline_at,
        }
    )


def check_job(ticket: JobTicket) -> JobTicket:
    """One status check: the upstream's answer, the next wait and whether the deadline passed."""
    settings = get_settings()
    record = verified_record(ticket, JobStore(settings))
    if not ticket.upstream_id:
        raise UpstreamProtocolError("the job has no upstream id to check")
    polls = ticket.polls + 1
    try:
        answer = UpstreamClient(settings).status(record.kind, ticket.upstream_id)
    except UpstreamRateLimitedError as exc:
        # The upstream asked for a longer wait than this function can sleep: the state
        # machine waits instead (capped by the deadline), and a transient limit fails nothing.
        now = utcnow()
        wait = _capped_wait(exc.retry_after or 1, now=now, deadline_at=ticket.deadline_at)
        logger.info("the upstream asked us to wait", extra={"wait_seconds": wait})
        return ticket.model_copy(
            update={
                "status": JobStatus.PENDING,
                "polls": polls,
                "wait_seconds": wait,
                "deadline_passed": deadline_passed(now=now, deadline_at=ticket.deadline_at),
            }
        )
    now = utcnow()
    update: dict[str, object] = {
        "status": answer.status,
        "polls": polls,
        "deadline_passed": deadline_passed(now=now, deadline_at=ticket.deadline_at),
        "wait_seconds": _poll_wait(settings, polls=polls, now=now, deadline_at=ticket.deadline_at),
    }
    if answer.status is JobStatus.SUCCESS:
        if not answer.download_urls:
            raise UpstreamProtocolError("the upstream reported SUCCESS without download_urls")
        update |= {
            "download_urls": select_image_urls(answer.download_urls, ticket.expected_images),
            "upstream_completed_at": now,
        }
    elif answer.status is JobStatus.FAILURE:
        update["failure"] = Failure(
            code=UPSTREAM_FAILURE, message=answer.error or "the upstream reported FAILURE"
        )
    logger.info("checked the upstream", extra={"upstream_status": answer.status, "polls": polls})
    return ticket.model_copy(update=update)


def store_job_images(ticket: JobTicket) -> StoredImages:
    """Copy every image into S3 and mark the job SUCCESS. Safe to retry: keys are deterministic."""
    settings = get_settings()
    jobs = JobStore(settings)
    verified_record(ticket, jobs)
    urls = select_image_urls(ticket.download_urls, ticket.expected_images)
    images = ImageStore(settings).copy_all(ticket.job_id, urls)
    now = utcnow()
    jobs.mark_succeeded(
        ticket.job_id,
        images=images,
        upstream_completed_at=ticket.upstream_completed_at or now,
        now=now,
    )
    logger.info("stored the job's images", extra={"images": len(images)})
    metrics.add_metric(name="ImagesStored", unit="Count", value=len(images))
    return StoredImages(job_id=ticket.job_id, images=images)


def failure_from(ticket: JobTicket) -> Failure:
    """The reason a job failed, in words for its caller: set by a state, or the error a Catch
    caught (whose raw text is logged, and shown only if the gateway wrote it for callers)."""
    if ticket.failure is not None:
        return ticket.failure
    caught = ticket.error or CaughtError(error="States.Unknown", cause="")
    code = _code_for(caught.error)
    if caught.error in CALLER_SAFE_ERRORS:
        message = _message_from_cause(caught)
    else:
        logger.error(
            "the job failed on an unexpected error",
            extra={"error": caught.error, "cause": caught.cause[:2000]},
        )
        message = PUBLIC_MESSAGES.get(code, PUBLIC_MESSAGES[INTERNAL_ERROR])
    return Failure(code=code, message=message)


def record_failure(ticket: JobTicket) -> Failure:
    jobs = JobStore()
    verified_record(ticket, jobs)
    failure = failure_from(ticket)
    recorded = jobs.mark_failed(
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
    return ERROR_CODES.get(error_name, INTERNAL_ERROR)


def _message_from_cause(caught: CaughtError) -> str:
    # A Lambda task's Cause is the JSON error the runtime reported; keep its message only.
    try:
        cause = json.loads(caught.cause)
    except ValueError:
        cause = None
    if isinstance(cause, dict) and cause.get("errorMessage"):
        return str(cause["errorMessage"])
    return PUBLIC_MESSAGES.get(_code_for(caught.error), PUBLIC_MESSAGES[INTERNAL_ERROR])


def job_view(job_id: str, *, owner: str, kind: JobKind | None = None) -> JobView:
    """The caller's view of its job, with freshly presigned URLs. Another caller's job, or a
    job asked for on another kind's route, is reported as unknown, so ids cannot be probed."""
    settings = get_settings()
    record = JobStore(settings).get(job_id)
    if record.owner != owner or (kind is not None and record.kind is not kind):
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

# Past this, a job whose upstream still cannot be asked is ended rather than retried forever.
GIVE_UP_AFTER = timedelta(days=1)
# A run stops taking new jobs with less time than this left (the next run goes on).
RECONCILE_SECONDS_PER_JOB = 15.0


class ReconcileReport(BaseModel):
    examined: int = 0
    resumed: list[str] = Field(default_factory=list)
    failed: list[str] = Field(default_factory=list)
    left_running: list[str] = Field(default_factory=list)
    retry_later: list[str] = Field(default_factory=list)
    errors: list[str] = Field(default_factory=list)
    deferred: int = 0


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
    PENDING forever: its execution never started, or ended without recording a result
    (machine timeout, abort, a crash).

    Each job succeeds or fails on its own: an error on one (a malformed row, a throttled
    DescribeExecution, an odd upstream answer) is counted on that job and the run goes on; a
    job that keeps failing is ended RECONCILE_FAILED after `reconcile_max_attempts` runs. A
    run stops taking jobs before its time is up; the next run continues.
    """
    settings = get_settings()
    now = utcnow()
    jobs = JobStore(settings)
    report = ReconcileReport()
    cutoff = now - timedelta(seconds=settings.reconcile_margin_seconds)
    for item in jobs.overdue(deadline_before=cutoff):
        if remaining_seconds() < RECONCILE_SECONDS_PER_JOB:
            report.deferred += 1
            continue
        job_id = str(item.get("job_id", ""))
        report.examined += 1
        logger.append_keys(job_id=job_id)
        try:
            outcome = _reconcile(JobStore.parse(item), jobs, now)
        except Exception:  # one job's failure must not stop the others
            logger.exception("could not reconcile an overdue job")
            metrics.add_metric(name="ReconcileErrors", unit="Count", value=1)
            outcome = _count_failure(job_id, jobs, settings, now)
        getattr(report, outcome).append(job_id)
        logger.info("reconciled an overdue job", extra={"outcome": outcome})
    logger.remove_keys(["job_id"])
    return report


def _count_failure(job_id: str, jobs: JobStore, settings: Settings, now: datetime) -> str:
    try:
        failures = jobs.count_reconcile_failure(job_id, now=now)
        if failures >= settings.reconcile_max_attempts:
            jobs.mark_failed(
                job_id,
                code=RECONCILE_FAILED,
                message="the gateway could not determine this job's outcome; "
                "contact the gateway's operator with the job id",
                now=now,
            )
            return "failed"
    except Exception:
        logger.exception("could not count a reconciler failure on the job")
    return "errors"


def _reconcile(record: JobRecord, jobs: JobStore, now: datetime) -> str:
    statuses = {name: execution_status(name) for name in (record.job_id, _resume_name(record))}
    if "RUNNING" in statuses.values():
        return "left_running"  # the loop's deadline or the machine's timeout will end it
    if not record.upstream_id:
        if record.submit_started_at is None:
            code, message = (
                NOT_SUBMITTED,
                (
                    "the gateway could not send the job upstream; nothing was charged, "
                    "submit it again"
                ),
            )
        else:
            code, message = (
                UpstreamOutcomeUnknownError.code,
                (
                    "the gateway stopped while sending the job upstream; the upstream may have "
                    "accepted (and charged) it"
                ),
            )
        jobs.mark_failed(record.job_id, code=code, message=message, now=now)
        return "failed"
    try:
        answer = UpstreamClient().status(record.kind, record.upstream_id)
    except UpstreamError as exc:
        if now - record.deadline_at < GIVE_UP_AFTER:
            return "retry_later"
        jobs.mark_failed(record.job_id, code=exc.code, message=exc.message, now=now)
        return "failed"
    expected = _samples(record.request)
    if answer.status is JobStatus.SUCCESS and answer.download_urls:
        free_name = next((name for name, status in statuses.items() if status is None), None)
        try:
            urls = select_image_urls(answer.download_urls, expected)
        except IncompleteResultError as exc:
            jobs.mark_failed(record.job_id, code=exc.code, message=exc.message, now=now)
            return "failed"
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
        if free_name is not None and start_workflow(ticket, name=free_name):
            return "resumed"
    if answer.status is JobStatus.FAILURE:
        code, message = UPSTREAM_FAILURE, answer.error or "the upstream reported FAILURE"
    elif answer.status is JobStatus.PENDING:
        code, message = TIMED_OUT, PUBLIC_MESSAGES[TIMED_OUT]
    else:
        code, message = WORKFLOW_FAILED, PUBLIC_MESSAGES[WORKFLOW_FAILED]
    jobs.mark_failed(record.job_id, code=code, message=message, now=now)
    return "failed"


def _samples(body: dict[str, Any]) -> int:
    samples = body.get("samples", 1)
    return samples if isinstance(samples, int) and 1 <= samples <= 4 else 1


def _resume_name(record: JobRecord) -> str:
    return f"{record.job_id}-resume"

"""Use case, the workflow's first task: POST the job's stored request upstream, at most once.

The request comes from the job row, never from the execution input. A claim on the row is taken
before the POST: a run that finds another's claim never POSTs. It follows that run's outcome
instead of failing the job: an Express machine runs a step at least once, so the claim may be a
duplicate of this very step still POSTing. It looks at the row again every few seconds: the
upstream's id recorded, it follows the job like the first run; the job ended, it ends quietly;
the claim older than any run can live (SUBMIT_IN_FLIGHT_SECONDS) with no id, the run that held
it died mid-POST and the job ends UPSTREAM_OUTCOME_UNKNOWN (once: the ending is conditional).
The claim is released only when the POST provably never reached the upstream (connection
refused, 429), and the job then waits in the state machine and tries again.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from imagegateway.domain.base import JobStatus
from imagegateway.domain.errors import (
    NOT_SUBMITTED,
    NOT_SUBMITTED_BY_DEADLINE_MESSAGE,
    UPSTREAM_REJECTED,
    ConfigurationError,
    JobEndedElsewhereError,
    SubmitAlreadyClaimedError,
    UpstreamAuthError,
    UpstreamError,
    UpstreamRateLimitedError,
    UpstreamUnavailableError,
)
from imagegateway.domain.image_set import select_image_urls
from imagegateway.domain.polling import (
    capped_wait,
    deadline_passed,
    hand_over_due,
    next_wait_seconds,
)
from imagegateway.domain.records import JobRecord
from imagegateway.domain.tickets import Failure, JobTicket
from imagegateway.domain.upstream_durations import DurationEstimate, job_shape
from imagegateway.platform.observability import logger, metrics
from imagegateway.platform.settings import Settings
from imagegateway.use_cases.ports import Ports

# Waits between submit attempts the upstream refused without taking the job (429, unreachable).
SUBMIT_RETRY_FIRST_WAIT_SECONDS = 5
SUBMIT_RETRY_MAX_WAIT_SECONDS = 120
# A Wait state may end a moment before the time a task computed: that is not "too early".
SUBMIT_NOT_BEFORE_SLACK_SECONDS = 0.5
# No run holds a submit claim longer than this: the SubmitUpstream state's TimeoutSeconds (150;
# the function's own timeout is 120). An older claim with no upstream id is a dead run's.
SUBMIT_IN_FLIGHT_SECONDS = 150
# How often a run that found another's claim looks at the row again.
CLAIM_LOOK_SECONDS = 3


def _failed(ticket: JobTicket, code: str, message: str) -> JobTicket:
    failure = Failure(code=code, message=message)
    return ticket.model_copy(update={"status": JobStatus.FAILURE, "failure": failure})


def send_job(ticket: JobTicket, deps: Ports) -> JobTicket:
    record = deps.jobs.for_ticket(ticket)
    if ticket.status is JobStatus.FAILURE and ticket.failure is not None:
        return ticket  # the queue's intake sent it and it failed there: record that
    now = deps.clock()
    handed_over = ticket.hand_over
    ticket = _execution_begun(ticket, deps.settings, now)
    if record.upstream_id:  # a re-run, or a resume: the upstream already has the job
        if ticket.status is JobStatus.SUCCESS and ticket.download_urls:
            return ticket  # the reconciler resumed a finished job: store it at once
        update = {"upstream_id": record.upstream_id, "status": JobStatus.PENDING, "wait_seconds": 1}
        if ticket.next_check_at is not None and ticket.next_check_at > now:
            # A job handed over while it waited for its predicted check: the rest of that wait.
            update["wait_seconds"] = _wait_for_check(ticket.next_check_at, ticket, deps, now)
        return ticket.model_copy(update=update)
    if record.status is not JobStatus.PENDING:
        # Ended elsewhere (cancelled, not started, a duplicate run's ending): told by whoever
        # ended it; this execution ends quietly.
        raise JobEndedElsewhereError(
            f"the job already ended {record.status.value}", job_id=record.job_id
        )
    if record.submit_started_at is not None:
        # Before the deadline's NOT_SUBMITTED: a claimed POST may be accepted and charged.
        return _follow_claim(ticket, record, deps, now)
    if deadline_passed(now=now, deadline_at=ticket.deadline_at):
        return _failed(ticket, NOT_SUBMITTED, NOT_SUBMITTED_BY_DEADLINE_MESSAGE)
    if handed_over and ticket.submit_not_before is not None:
        # An Express execution handed the job over while it waited to submit again: the rest of
        # that wait comes first (the upstream asked for it).
        remaining = (ticket.submit_not_before - now).total_seconds()
        if remaining > SUBMIT_NOT_BEFORE_SLACK_SECONDS:
            return _later(ticket, remaining, deps.settings, now=now)
    if not deps.jobs.claim_submit(ticket.job_id, run_token=ticket.run_token, now=now):
        # Another run claimed it since the row was read (a duplicate of this step).
        return _follow_claim(ticket, deps.jobs.get(ticket.job_id), deps, now)
    try:
        answer = deps.upstream.submit(record.kind, record.request)
    except UpstreamUnavailableError as exc:  # nothing was sent, or the upstream refused it
        deps.jobs.release_submit(ticket.job_id)
        return _send_later(ticket, exc, deps.settings, now=deps.clock())
    except (ConfigurationError, UpstreamAuthError):
        deps.jobs.release_submit(ticket.job_id)  # nothing was sent: the key is missing or refused
        metrics.add_metric(name="UpstreamSubmitErrors", unit="Count", value=1)
        raise
    except UpstreamError:
        metrics.add_metric(name="UpstreamSubmitErrors", unit="Count", value=1)
        _write_ledger(record, ticket, deps)  # it may have reached the upstream, and be charged
        raise
    _write_ledger(record, ticket, deps)
    now = deps.clock()
    if answer.status is JobStatus.FAILURE:
        message = answer.error or "the upstream refused the job"
        logger.info("upstream refused the job", extra={"error": message})
        return _failed(ticket, UPSTREAM_REJECTED, message)
    upstream_id = str(answer.id)
    # An instant upstream (SUCCESS at once) keeps its fast path: nothing to predict.
    estimate = _estimate(record, deps, now) if answer.status is JobStatus.PENDING else None
    deps.jobs.mark_accepted(
        ticket.job_id,
        upstream_id=upstream_id,
        now=now,
        estimated_done_at=estimate.done_at(now) if estimate else None,
    )
    logger.info("upstream accepted the job", extra={"upstream_id": upstream_id})
    metrics.add_metric(name="UpstreamSubmits", unit="Count", value=1)
    settings = deps.settings
    accepted: dict[str, object] = {
        "upstream_id": upstream_id,
        "status": answer.status,
        "submit_attempts": ticket.submit_attempts + 1,
        "wait_seconds": _first_wait(ticket, settings, now),
    }
    if estimate is not None:
        first_check = min(estimate.first_check(now), ticket.deadline_at)
        accepted |= {
            "wait_seconds": _wait_for_check(first_check, ticket, deps, now),
            "next_check_at": first_check,
            "expected_done_at": estimate.done_at(now),
        }
    if answer.status is JobStatus.SUCCESS:
        accepted |= {
            "download_urls": select_image_urls(answer.download_urls, ticket.expected_images),
            "upstream_completed_at": now,
        }
    return ticket.model_copy(update=accepted)


def _follow_claim(ticket: JobTicket, record: JobRecord, deps: Ports, now: datetime) -> JobTicket:
    """Another run holds (or held) the submit claim: follow its outcome, never POST."""
    if record.upstream_id:  # it was accepted: follow the job like the run that sent it
        update = {"upstream_id": record.upstream_id, "status": JobStatus.PENDING, "wait_seconds": 1}
        return ticket.model_copy(update=update)
    if record.status is not JobStatus.PENDING:
        raise JobEndedElsewhereError(
            f"the job already ended {record.status.value}", job_id=record.job_id
        )
    claimed_at = record.submit_started_at
    if claimed_at is not None and (now - claimed_at).total_seconds() >= SUBMIT_IN_FLIGHT_SECONDS:
        raise SubmitAlreadyClaimedError(
            "an earlier attempt to send this job upstream was interrupted after it may have "
            "reached the upstream; it may have accepted (and charged) the job"
        )
    # Still in flight (or released meanwhile: then this run may claim it next time). The
    # deadline does not end it here: the other run's POST may be accepted.
    logger.info("another run is sending the job upstream; following it")
    waiting = ticket.model_copy(
        update={
            "status": JobStatus.PENDING,
            "wait_seconds": CLAIM_LOOK_SECONDS,
            "submit_not_before": now + timedelta(seconds=CLAIM_LOOK_SECONDS),
            "deadline_passed": False,
        }
    )
    if hand_over_due(
        started_at=ticket.execution_started_at,
        now=now,
        wait_seconds=CLAIM_LOOK_SECONDS,
        hand_over_seconds=deps.settings.express_hand_over_seconds,
    ):
        return waiting.handed_over()
    return waiting


def _write_ledger(record: JobRecord, ticket: JobTicket, deps: Ports) -> None:
    """The ledger's line for this POST. Never fails the job: the POST is done, and the job must
    still be followed (a lost line is logged and counted)."""
    try:
        deps.usage.record_call(
            record.owner,
            kind=record.kind,
            images=ticket.expected_images,
            job_id=record.job_id,
            now=deps.clock(),
        )
    except Exception:
        logger.exception("could not write the upstream call to the ledger")
        metrics.add_metric(name="LedgerWriteFailures", unit="Count", value=1)


def _estimate(record: JobRecord, deps: Ports, now: datetime) -> DurationEstimate | None:
    """How long jobs of this shape took (None: unseen, stale or noisy, or the samples could not
    be read: the job keeps today's schedule; the estimate is never needed for correctness)."""
    if not deps.settings.predicted_first_check:
        return None
    try:
        estimate = deps.durations.estimate(job_shape(record.kind, record.request), now=now)
    except Exception:
        logger.exception("could not read the upstream's durations; checking as for a new shape")
        metrics.add_metric(name="DurationReadFailures", unit="Count", value=1)
        return None
    metrics.add_metric(
        name="PredictedFirstChecks" if estimate else "UnpredictedFirstChecks", unit="Count", value=1
    )
    return estimate


def _wait_for_check(moment: datetime, ticket: JobTicket, deps: Ports, now: datetime) -> int:
    """The Wait state's whole seconds before a predicted check at `moment` (at least 1, never
    past the deadline; the check function waits out the fraction left). An Express execution
    lives 5 minutes: its wait ends by its hand-over time, and the check then hands the job over
    to wait on in the next execution (an early GET per hand-over)."""
    seconds = math.floor((moment - now).total_seconds())
    if ticket.execution_started_at is not None:
        hand_over_at = ticket.execution_started_at + timedelta(
            seconds=deps.settings.express_hand_over_seconds
        )
        seconds = min(seconds, math.floor((hand_over_at - now).total_seconds()))
    return capped_wait(max(1, seconds), now=now, deadline_at=ticket.deadline_at)


def _first_wait(ticket: JobTicket, settings: Settings, now: datetime) -> int:
    """Before the first status check: a second when the check polls in-function (it waits for
    the job itself), else the backoff's first interval."""
    if settings.checks_every_second:
        return capped_wait(1, now=now, deadline_at=ticket.deadline_at)
    return next_wait_seconds(
        polls=0,
        now=now,
        deadline_at=ticket.deadline_at,
        initial=settings.poll_interval_seconds,
        maximum=settings.poll_max_interval_seconds,
    )


def _execution_begun(ticket: JobTicket, settings: Settings, now: datetime) -> JobTicket:
    """Every execution's first task: an Express execution's hand-over clock starts here."""
    update: dict[str, object] = {"hand_over": False}
    if settings.workflow_type == "EXPRESS" and ticket.execution_started_at is None:
        update["execution_started_at"] = now
    return ticket.model_copy(update=update)


def _send_later(
    ticket: JobTicket, exc: UpstreamUnavailableError, settings: Settings, *, now: datetime
) -> JobTicket:
    attempts = ticket.submit_attempts + 1
    backoff = min(
        SUBMIT_RETRY_MAX_WAIT_SECONDS, SUBMIT_RETRY_FIRST_WAIT_SECONDS * 2 ** (attempts - 1)
    )
    asked = exc.retry_after if isinstance(exc, UpstreamRateLimitedError) else None
    wanted = asked if asked is not None else backoff
    logger.warning(
        "the upstream did not take the job; trying again later",
        extra={"error": exc.message, "attempts": attempts, "wait_seconds": wanted},
    )
    metrics.add_metric(name="UpstreamSubmitDeferred", unit="Count", value=1)
    later = _later(ticket, wanted, settings, now=now)
    return later.model_copy(update={"submit_attempts": attempts})


def _later(ticket: JobTicket, seconds: float, settings: Settings, *, now: datetime) -> JobTicket:
    """PENDING, to submit again in `seconds` (capped by the deadline), in this execution or,
    past an Express execution's hand-over time, in the next one."""
    wait = capped_wait(seconds, now=now, deadline_at=ticket.deadline_at)
    waiting = ticket.model_copy(
        update={
            "status": JobStatus.PENDING,
            "wait_seconds": wait,
            "submit_not_before": now + timedelta(seconds=wait),
            "deadline_passed": deadline_passed(now=now, deadline_at=ticket.deadline_at)
            or now + timedelta(seconds=wait) >= ticket.deadline_at,
        }
    )
    if hand_over_due(
        started_at=ticket.execution_started_at,
        now=now,
        wait_seconds=wait,
        hand_over_seconds=settings.express_hand_over_seconds,
    ):
        return waiting.handed_over()
    return waiting

"""Use case, the workflow's one failure path: mark the job FAILURE with a code and a message
written for its caller, and tell its callers (the completion event, task token, webhook).

A job ends once: if it already ended (cancelled, not started, stored, or failed by a duplicate
run of this step), the write is refused and the task raises JobEndedElsewhereError, so the
execution ends quietly and publishes nothing: whoever ended the job told its caller."""

from __future__ import annotations

import json

from imagegateway.domain.errors import (
    ERROR_CODES,
    INTERNAL_ERROR,
    PUBLIC_MESSAGES,
    STATES_ERROR_CODES,
    JobEndedElsewhereError,
)
from imagegateway.domain.events import Completion
from imagegateway.domain.tickets import CaughtError, Failure, JobTicket
from imagegateway.platform.observability import count_by, logger, metrics
from imagegateway.use_cases.completion import conclude
from imagegateway.use_cases.ports import Ports

# Errors whose message the gateway wrote for callers; any other error's text (botocore, a
# crash) stays in the logs and the caller reads PUBLIC_MESSAGES for its code.
CALLER_SAFE_ERRORS = frozenset(ERROR_CODES) - {"GatewayError", "ConfigurationError"}


def failure_from(ticket: JobTicket) -> Failure:
    """Set by a state, or the error a Catch caught (its raw text logged, and shown only if the
    gateway wrote it for callers)."""
    if isinstance(ticket.failure, Failure):
        return ticket.failure
    caught = ticket.failure or CaughtError(error="States.Unknown", cause="")
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


def fail_job(ticket: JobTicket, deps: Ports) -> Completion:
    deps.jobs.for_ticket(ticket)  # the ticket is the gateway's own
    failure = failure_from(ticket)
    if not deps.jobs.mark_failed(
        ticket.job_id, code=failure.code, message=failure.message, now=deps.clock()
    ):
        # Ended before this write (a cancel, a success, a duplicate run of this step...): the
        # write that ended it told its caller; a second ending would contradict it.
        ended = deps.jobs.get(ticket.job_id)
        raise JobEndedElsewhereError(
            f"the job already ended {ended.status.value}", job_id=ticket.job_id
        )
    logger.info("job failed", extra={"error_code": failure.code, "error": failure.message})
    metrics.add_metric(name="JobsFailed", unit="Count", value=1)
    count_by("JobsFailedByCode", error_code=failure.code)  # the operators' dashboard
    # This write ended the job: it alone gives the images back (if never sent) and tells.
    return conclude(deps.jobs.get(ticket.job_id), deps)


def _code_for(error_name: str) -> str:
    if error_name in STATES_ERROR_CODES:
        return str(STATES_ERROR_CODES[error_name])
    return str(ERROR_CODES.get(error_name, INTERNAL_ERROR))


def _message_from_cause(caught: CaughtError) -> str:
    # A Lambda task's Cause is the JSON error the runtime reported; keep its message only.
    try:
        cause = json.loads(caught.cause)
    except ValueError:
        cause = None
    if isinstance(cause, dict) and cause.get("errorMessage"):
        return str(cause["errorMessage"])
    return PUBLIC_MESSAGES.get(_code_for(caught.error), PUBLIC_MESSAGES[INTERNAL_ERROR])

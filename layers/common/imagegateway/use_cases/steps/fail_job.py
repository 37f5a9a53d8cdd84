"""Use case, the workflow's one failure path: mark the job FAILURE with a code and a message
written for its caller, tell the caller (task token, webhook), and hand the completion to
PublishCompletion."""

from __future__ import annotations

import json

from imagegateway.domain.base import JobStatus
from imagegateway.domain.errors import (
    ERROR_CODES,
    INTERNAL_ERROR,
    PUBLIC_MESSAGES,
    STATES_ERROR_CODES,
    FailureCode,
    JobEndedElsewhereError,
)
from imagegateway.domain.events import Completion
from imagegateway.domain.tickets import CaughtError, Failure, JobTicket
from imagegateway.platform.observability import logger, metrics
from imagegateway.use_cases.completion import completion_of, give_back_if_never_sent, tell_everyone
from imagegateway.use_cases.ports import Ports

# Errors whose message the gateway wrote for callers; any other error's text (botocore, a
# crash) stays in the logs and the caller reads PUBLIC_MESSAGES for its code.
CALLER_SAFE_ERRORS = frozenset(ERROR_CODES) - {"GatewayError", "ConfigurationError"}
# Codes only written outside the workflow, by whatever then told the job's caller.
ENDED_OUTSIDE_THE_WORKFLOW = frozenset({FailureCode.CANCELLED, FailureCode.WORKFLOW_NOT_STARTED})


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
    before = deps.jobs.for_ticket(ticket)
    if before.status is JobStatus.FAILURE and before.error_code in ENDED_OUTSIDE_THE_WORKFLOW:
        # Cancelled, or ended by a submit that could not start this execution (which started
        # after all): whoever ended it told its caller; nothing more to record or say.
        raise JobEndedElsewhereError(f"the job ended {before.error_code}", job_id=ticket.job_id)
    failure = failure_from(ticket)
    recorded = deps.jobs.mark_failed(
        ticket.job_id, code=failure.code, message=failure.message, now=deps.clock()
    )
    logger.info(
        "job failed",
        extra={"error_code": failure.code, "error": failure.message, "recorded": recorded},
    )
    metrics.add_metric(name="JobsFailed", unit="Count", value=1)
    # The row as it ended (FAILURE, or SUCCESS if the job had succeeded after all).
    record = deps.jobs.get(ticket.job_id)
    if recorded:
        give_back_if_never_sent(record, deps)
    completion = completion_of(record, deps)
    tell_everyone(record, completion, deps)
    return completion


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

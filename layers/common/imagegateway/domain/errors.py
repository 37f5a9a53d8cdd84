"""Every domain error, in one module (their codes: `failure_codes`, re-exported here).

HTTP status codes are decided only in the HTTP resolvers' exception handlers. In Step Functions
tasks the error escapes the handler: its class name is the `Error` that `Retry` and `Catch` match.
Each class carries the stable `code` a caller sees on a FAILURE job (or in an error answer).

`FailureCode` is the one list of those codes: the classes, `ERROR_CODES` (built from the classes),
the module constants and the messages all refer to it, and `tests/template/test_asl_codes.py`
holds the state machine's error names, codes and messages, and the README's table, to it.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import ClassVar, NamedTuple

# Re-exported: the codes are read with the errors that carry them.
from imagegateway.domain.failure_codes import JOB_FAILURE_CODES as JOB_FAILURE_CODES
from imagegateway.domain.failure_codes import NOT_JOB_CODES as NOT_JOB_CODES
from imagegateway.domain.failure_codes import RETRYABLE as RETRYABLE
from imagegateway.domain.failure_codes import FailureCode as FailureCode
from imagegateway.domain.failure_codes import retryable_of as retryable_of


class GatewayError(Exception):
    code: ClassVar[FailureCode] = FailureCode.INTERNAL_ERROR

    def __init__(self, message: str, *, job_id: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        # The job the error ended, when there is one: the caller can still look it up.
        self.job_id = job_id


class ConfigurationError(GatewayError):
    code = FailureCode.CONFIGURATION_ERROR


class UpstreamKeyMissingError(ConfigurationError):
    """The upstream API key secret has no value yet (a first deploy): nothing can be sent."""

    code = FailureCode.UPSTREAM_NOT_CONFIGURED


class WorkflowNotStartedError(GatewayError):
    """Step Functions refused to start the job's execution (throttled, unavailable, a role
    without states:StartExecution on a first deploy): the job ended at once, nothing sent."""

    code = FailureCode.WORKFLOW_NOT_STARTED


# --- the upstream ---------------------------------------------------------------------------


class UpstreamError(GatewayError):
    code = FailureCode.UPSTREAM_ERROR


class UpstreamUnavailableError(UpstreamError):
    """The upstream could not be reached, or kept answering 429/5xx after our retries."""

    code = FailureCode.UPSTREAM_UNAVAILABLE


class UpstreamRateLimitedError(UpstreamUnavailableError):
    """The upstream answered 429 (or 503) with a Retry-After longer than the function can wait:
    the wait happens in the state machine instead."""

    code = FailureCode.UPSTREAM_RATE_LIMITED

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class UpstreamOutcomeUnknownError(UpstreamError):
    """The submit POST may have reached the upstream, but its answer does not say whether the
    job was accepted (a 5xx from a load balancer, a 2xx without an id or without JSON, a crash
    after sending). The upstream may hold (and charge) the job: it is never POSTed again."""

    code = FailureCode.UPSTREAM_OUTCOME_UNKNOWN


class UpstreamTimeoutError(UpstreamOutcomeUnknownError):
    """The upstream took the request but did not answer in time: it may have accepted it."""

    code = FailureCode.UPSTREAM_TIMEOUT


class SubmitAlreadyClaimedError(UpstreamOutcomeUnknownError):
    """Another attempt holds the job's submit claim: it may be sending the POST right now, or
    have died doing so. Never a second POST. In the workflow this ends the job like any unknown
    outcome; the queue's intake instead brings the message back later (the other delivery may
    be mid-send)."""


class UpstreamAuthError(UpstreamError):
    """The upstream refused the gateway's own API key: an operator problem, not the caller's."""

    code = FailureCode.UPSTREAM_AUTH_FAILED


class UpstreamProtocolError(UpstreamError):
    """The upstream answered something that is not its documented protocol."""

    code = FailureCode.UPSTREAM_BAD_RESPONSE


# --- jobs -----------------------------------------------------------------------------------


class JobNotFoundError(GatewayError):
    code = FailureCode.JOB_NOT_FOUND


class JobFinishedError(GatewayError):
    """A cancel for a job that already ended (a 409 with its status): nothing changes."""

    code = FailureCode.JOB_FINISHED

    def __init__(self, message: str, *, job_id: str, status: str) -> None:
        super().__init__(message, job_id=job_id)
        self.status = status


class JobEndedElsewhereError(GatewayError):
    """A workflow task for a job that already ended outside this execution: cancelled (an
    Express execution cannot be stopped, so it stops itself), or a duplicate run of an Express
    execution. The execution ends quietly: whoever ended the job told its caller."""

    code = FailureCode.JOB_FINISHED


class PromptTooLongError(GatewayError):
    """`Prefer: strict-tokens`: a prompt (or negative prompt) longer than the tokens the model
    reads, refused (a 422) before anything is stored or sent; `details` name the fields."""

    code = FailureCode.PROMPT_TOO_LONG

    def __init__(self, message: str, *, details: list[tuple[str, str]]) -> None:
        super().__init__(message)
        self.details = details


class InvalidCursorError(GatewayError):
    """A list cursor this gateway did not hand to this caller."""

    code = FailureCode.INVALID_CURSOR


class ForeignTicketError(GatewayError):
    """A workflow task got a ticket that does not match its job row (an execution not started by
    the gateway, or a tampered input): it refuses to act on it."""

    code = FailureCode.FOREIGN_TICKET


class IncompleteResultError(GatewayError):
    """The upstream reported SUCCESS with fewer distinct images than the job asked for."""

    code = FailureCode.INCOMPLETE_RESULT


class MalformedBodyError(GatewayError):
    code = FailureCode.MALFORMED_BODY


class UnreadableInputError(MalformedBodyError):
    """Input the gateway does not read: JSON that `domain.json_text` refuses (not JSON, nested
    too deep, a number no field can hold, text that is not Unicode, a key said twice), or a
    header or parameter that is not Unicode text; `details` say where."""

    code = FailureCode.MALFORMED_BODY  # its parent's answer (a 400), with where

    def __init__(self, message: str, *, details: list[tuple[str, str]]) -> None:
        super().__init__(message)
        self.details = details


class BodyTooLargeError(GatewayError):
    code = FailureCode.BODY_TOO_LARGE


class UnsupportedMediaTypeError(GatewayError):
    code = FailureCode.UNSUPPORTED_MEDIA_TYPE


class InvalidIdempotencyKeyError(GatewayError):
    code = FailureCode.INVALID_IDEMPOTENCY_KEY


class BudgetExceededError(GatewayError):
    """The caller's daily image budget cannot take the job's images: refused before anything is
    stored or sent (a 429 with the reset time; for event entries, a Failed event)."""

    code = FailureCode.BUDGET_EXCEEDED

    def __init__(self, message: str, *, budget: int, used: int, resets_at: datetime) -> None:
        super().__init__(message)
        self.budget = budget
        self.used = used
        self.resets_at = resets_at


class InvalidRequestError(GatewayError):
    """A queued or evented request that can never run; `details` name the fields and why."""

    code = FailureCode.INVALID_REQUEST

    def __init__(self, message: str, *, details: list[tuple[str, str]] | None = None) -> None:
        super().__init__(message)
        self.details = details or []


class IdempotencyKeyReusedError(InvalidRequestError):
    """A queued or evented request whose owner used its idempotency key for another request."""

    code = FailureCode.IDEMPOTENCY_KEY_REUSED


class IdempotencyValidationError(Exception):
    """An idempotency key used before with another request (Powertools' error of this name,
    re-raised as the gateway's own so that catching it does not import the utility)."""


class IdempotencyAlreadyInProgressError(Exception):
    """A request with the same idempotency key is still running (Powertools' error of this
    name, re-raised as the gateway's own)."""


class RetryLater(Exception):
    """A queued message to bring back in `seconds` (SQS's bound, 12 hours, at most): nothing
    is wrong with it, the time is. Not a GatewayError: it never ends a job."""

    MAX_SECONDS = 43200

    def __init__(self, seconds: int, reason: str) -> None:
        super().__init__(reason)
        self.seconds = max(0, min(int(seconds), self.MAX_SECONDS))


# --- images ---------------------------------------------------------------------------------


class ImageDownloadError(GatewayError):
    """A transient failure fetching an image; the workflow retries the whole (idempotent) copy."""

    code = FailureCode.DOWNLOAD_FAILED


class ImageRejectedError(GatewayError):
    """The image can never be stored (not an image, too large, a host we do not fetch from)."""

    code = FailureCode.IMAGE_REJECTED


class StoredImagesGoneError(GatewayError):
    """A cached job's stored images could not be copied (their retention ended): the request is
    generated again. Never told to a caller, so it carries the generic code."""

    code = FailureCode.INTERNAL_ERROR


# --- failure codes without an exception class (set by the workflow or the reconciler) ---------
# Aliases kept for the modules that import them; they are the FailureCode members themselves.

UPSTREAM_REJECTED = FailureCode.UPSTREAM_REJECTED  # the upstream's submit answer was FAILURE
UPSTREAM_FAILURE = FailureCode.UPSTREAM_FAILURE  # the upstream reported the job FAILURE
TIMED_OUT = FailureCode.TIMED_OUT  # the upstream did not finish before the job's deadline
NOT_SUBMITTED = FailureCode.NOT_SUBMITTED  # never sent upstream: nothing was charged
WORKFLOW_FAILED = FailureCode.WORKFLOW_FAILED  # the execution ended without recording the outcome
RECONCILE_FAILED = FailureCode.RECONCILE_FAILED  # the reconciler kept failing on the job
INTERNAL_ERROR = FailureCode.INTERNAL_ERROR  # GatewayError.code

# Errors Step Functions itself raises, by the name a Catch sees.
STATES_ERROR_CODES: dict[str, FailureCode] = {
    "States.Timeout": FailureCode.TIMED_OUT,
    "States.HeartbeatTimeout": FailureCode.TIMED_OUT,
}

# What a caller reads for a failure whose own message is not meant for callers (an unexpected
# exception, a Lambda crash): stable text per code; the details stay in the logs.
PUBLIC_MESSAGES: dict[str, str] = {
    FailureCode.INTERNAL_ERROR: "the gateway failed while handling this job; see the error_code",
    FailureCode.CONFIGURATION_ERROR: "the gateway is misconfigured; its operator has been alerted",
    FailureCode.UPSTREAM_NOT_CONFIGURED: (
        "the gateway has no upstream API key yet; its operator must add it"
    ),
    FailureCode.WORKFLOW_FAILED: "the job's workflow ended without storing its images",
    FailureCode.TIMED_OUT: "the upstream did not finish the job before its deadline",
    FailureCode.CANCELLED: "the job was cancelled by its caller",
    FailureCode.WORKFLOW_NOT_STARTED: (
        "the gateway could not start the job's workflow; nothing was sent or charged, "
        "submit it again"
    ),
}

# The upstream never took the job (429s, unreachable) and its deadline passed: the submit task
# and the state machine's SubmitDeadlinePassed state end the job with this text.
NOT_SUBMITTED_BY_DEADLINE_MESSAGE = (
    "the upstream did not take the job before its deadline; nothing was charged, submit it again"
)


class StateFailure(NamedTuple):
    code: FailureCode
    message: str


# The failures the state machine records by itself, in its Pass states, by state name. The ASL
# cannot import this module, so it repeats them; tests/template/test_asl_codes.py holds the two
# identical.
ASL_STATE_FAILURES: dict[str, StateFailure] = {
    "SubmitDeadlinePassed": StateFailure(
        FailureCode.NOT_SUBMITTED, NOT_SUBMITTED_BY_DEADLINE_MESSAGE
    ),
    "UnexpectedStart": StateFailure(
        FailureCode.INTERNAL_ERROR, "the workflow reached a state it does not expect"
    ),
    "DeadlinePassed": StateFailure(FailureCode.TIMED_OUT, PUBLIC_MESSAGES[FailureCode.TIMED_OUT]),
}


def gateway_error_classes() -> Iterator[type[GatewayError]]:
    """GatewayError and every subclass defined in this module, however deep, parents first."""
    pending: list[type[GatewayError]] = [GatewayError]
    seen: set[type[GatewayError]] = set()
    while pending:
        cls = pending.pop(0)
        if cls in seen or cls.__module__ != __name__:
            continue
        seen.add(cls)
        yield cls
        pending.extend(cls.__subclasses__())


# The code of each error class, by the class name a Step Functions Catch sees as its `Error`.
# Built from the classes themselves, so a new class is in it without anyone listing it.
ERROR_CODES: dict[str, FailureCode] = {cls.__name__: cls.code for cls in gateway_error_classes()}

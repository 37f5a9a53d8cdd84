"""Every domain error and every failure code, in one module.

HTTP status codes are decided only in the HTTP resolvers' exception handlers. In Step Functions
tasks the error escapes the handler: its class name is the `Error` that `Retry` and `Catch` match.
Each class carries the stable `code` a caller sees on a FAILURE job (or in an error answer).

`FailureCode` is the one list of those codes: the classes, `ERROR_CODES` (built from the classes),
the module constants and the messages all refer to it, and `tests/template/test_asl_codes.py`
holds the state machine's error names, codes and messages, and the README's table, to it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime
from enum import StrEnum
from types import MappingProxyType
from typing import ClassVar, NamedTuple


class FailureCode(StrEnum):
    """Every `error_code` the gateway hands out. The values are a public contract (callers
    branch on them, job rows store them): never rename one; each value is its member's name."""

    # -- the gateway itself
    INTERNAL_ERROR = "INTERNAL_ERROR"
    CONFIGURATION_ERROR = "CONFIGURATION_ERROR"
    UPSTREAM_NOT_CONFIGURED = "UPSTREAM_NOT_CONFIGURED"
    WORKFLOW_FAILED = "WORKFLOW_FAILED"
    # The job's workflow could not be started (a 503 to its HTTP caller): nothing was sent.
    WORKFLOW_NOT_STARTED = "WORKFLOW_NOT_STARTED"
    RECONCILE_FAILED = "RECONCILE_FAILED"
    # -- the upstream
    UPSTREAM_ERROR = "UPSTREAM_ERROR"
    UPSTREAM_UNAVAILABLE = "UPSTREAM_UNAVAILABLE"
    UPSTREAM_RATE_LIMITED = "UPSTREAM_RATE_LIMITED"
    UPSTREAM_OUTCOME_UNKNOWN = "UPSTREAM_OUTCOME_UNKNOWN"
    UPSTREAM_TIMEOUT = "UPSTREAM_TIMEOUT"
    UPSTREAM_AUTH_FAILED = "UPSTREAM_AUTH_FAILED"
    UPSTREAM_BAD_RESPONSE = "UPSTREAM_BAD_RESPONSE"
    UPSTREAM_REJECTED = "UPSTREAM_REJECTED"
    UPSTREAM_FAILURE = "UPSTREAM_FAILURE"
    NOT_SUBMITTED = "NOT_SUBMITTED"
    TIMED_OUT = "TIMED_OUT"
    CANCELLED = "CANCELLED"
    # -- jobs and requests
    JOB_NOT_FOUND = "JOB_NOT_FOUND"
    FOREIGN_TICKET = "FOREIGN_TICKET"
    INCOMPLETE_RESULT = "INCOMPLETE_RESULT"
    MALFORMED_BODY = "MALFORMED_BODY"
    BODY_TOO_LARGE = "BODY_TOO_LARGE"
    UNSUPPORTED_MEDIA_TYPE = "UNSUPPORTED_MEDIA_TYPE"
    INVALID_IDEMPOTENCY_KEY = "INVALID_IDEMPOTENCY_KEY"
    # The caller's daily image budget is spent: a 429 (HTTP) or a Failed event, no job, no call.
    BUDGET_EXCEEDED = "BUDGET_EXCEEDED"
    # A queued or evented request that can never run (not JSON, not an envelope, an invalid
    # request, a reused idempotency key): told as an `Image Generation Failed` event, no job.
    INVALID_REQUEST = "INVALID_REQUEST"
    # A queued or evented request whose idempotency key its owner already used for another
    # request: refused on its own callbacks (Failed event, task failure, webhook), no job.
    IDEMPOTENCY_KEY_REUSED = "IDEMPOTENCY_KEY_REUSED"
    INVALID_CURSOR = "INVALID_CURSOR"
    # A prompt over the tokens SD 1.5 reads, refused because the caller asked for strictness.
    PROMPT_TOO_LONG = "PROMPT_TOO_LONG"
    JOB_FINISHED = "JOB_FINISHED"
    # -- images
    DOWNLOAD_FAILED = "DOWNLOAD_FAILED"
    IMAGE_REJECTED = "IMAGE_REJECTED"

    @property
    def retryable(self) -> bool:
        """Whether the same request, sent again later, may succeed (RETRYABLE)."""
        return RETRYABLE[self]


# Whether retrying helps: may the same request, sent again (later, unchanged), succeed? Decided
# here once per code; every failure a caller reads (HTTP error answers, a failed job's view, its
# completion event, webhook and task output) carries it as `retryable`, and the README's table
# shows it. True where the gateway, AWS or the upstream was unwell or slow; false where the
# request itself (or the caller's own choice) is the reason, or where only an operator can help.
RETRYABLE: Mapping[FailureCode, bool] = MappingProxyType(
    {
        FailureCode.INTERNAL_ERROR: True,
        # A misconfigured stack (a role, a setting) fails every request the same way until an
        # operator redeploys: retrying only adds load.
        FailureCode.CONFIGURATION_ERROR: False,
        # A first deploy before the key is stored: the answer already says Retry-After 60, and
        # the operator is alerted; the same request succeeds once the key is in.
        FailureCode.UPSTREAM_NOT_CONFIGURED: True,
        FailureCode.WORKFLOW_FAILED: True,
        FailureCode.WORKFLOW_NOT_STARTED: True,
        FailureCode.RECONCILE_FAILED: True,
        FailureCode.UPSTREAM_ERROR: True,
        FailureCode.UPSTREAM_UNAVAILABLE: True,
        FailureCode.UPSTREAM_RATE_LIMITED: True,
        # The upstream may have taken (and charged) the job: a retry may succeed but may also be
        # charged twice (the README's "Charged?" column says maybe); the caller weighs that.
        FailureCode.UPSTREAM_OUTCOME_UNKNOWN: True,
        FailureCode.UPSTREAM_TIMEOUT: True,
        # The upstream refused the gateway's key: only an operator can fix it.
        FailureCode.UPSTREAM_AUTH_FAILED: False,
        FailureCode.UPSTREAM_BAD_RESPONSE: True,
        # The upstream's submit answer refused the request (an unknown model...): it will again.
        FailureCode.UPSTREAM_REJECTED: False,
        # The upstream took the request (it is valid) and then failed running it: a run's
        # failure (a busy or broken worker), not the request's, as far as the gateway can tell.
        FailureCode.UPSTREAM_FAILURE: True,
        FailureCode.NOT_SUBMITTED: True,
        FailureCode.TIMED_OUT: True,
        # The caller's own choice.
        FailureCode.CANCELLED: False,
        FailureCode.JOB_NOT_FOUND: False,
        FailureCode.FOREIGN_TICKET: False,
        # The upstream's SUCCESS listed too few images: a new run usually lists them all.
        FailureCode.INCOMPLETE_RESULT: True,
        FailureCode.MALFORMED_BODY: False,
        FailureCode.BODY_TOO_LARGE: False,
        FailureCode.UNSUPPORTED_MEDIA_TYPE: False,
        FailureCode.INVALID_IDEMPOTENCY_KEY: False,
        # After `resets_at` (the answer's Retry-After). A job bigger than the whole budget never
        # fits: its message says so, but the code (and so this decision) is the same.
        FailureCode.BUDGET_EXCEEDED: True,
        FailureCode.INVALID_REQUEST: False,
        FailureCode.IDEMPOTENCY_KEY_REUSED: False,
        FailureCode.INVALID_CURSOR: False,
        FailureCode.PROMPT_TOO_LONG: False,
        # Cancelling a job that already ended: it stays ended.
        FailureCode.JOB_FINISHED: False,
        # Fetching the upstream's images failed (after the workflow's own retries): a transient
        # network or host problem; a new job fetches new URLs.
        FailureCode.DOWNLOAD_FAILED: True,
        # Not an image, too large, or on a host the gateway does not fetch from: it would be again.
        FailureCode.IMAGE_REJECTED: False,
    }
)


def retryable_of(code: str | None) -> bool:
    """The decision of a code as a job row stores it (a plain string). None, or a code this
    version does not know, is the gateway's own failure: nothing says the request is at fault."""
    member = FailureCode.__members__.get(code or "", FailureCode.INTERNAL_ERROR)
    return member.retryable


# Codes that never end a job: the HTTP error answers of a request refused before any job exists
# or for a job the caller may not see, a ticket the workflow refuses to act on (RecordFailure
# refuses it too, so nothing is written), and UpstreamError's own code (only its subclasses are
# raised). Every other code can be a FAILURE job's `error_code` (the README's table lists them).
NOT_JOB_CODES: frozenset[FailureCode] = frozenset(
    {
        FailureCode.JOB_NOT_FOUND,
        FailureCode.FOREIGN_TICKET,
        FailureCode.MALFORMED_BODY,
        FailureCode.BODY_TOO_LARGE,
        FailureCode.UNSUPPORTED_MEDIA_TYPE,
        FailureCode.INVALID_IDEMPOTENCY_KEY,
        FailureCode.BUDGET_EXCEEDED,
        FailureCode.INVALID_REQUEST,
        FailureCode.IDEMPOTENCY_KEY_REUSED,
        FailureCode.INVALID_CURSOR,
        FailureCode.PROMPT_TOO_LONG,
        FailureCode.JOB_FINISHED,
        FailureCode.UPSTREAM_ERROR,
    }
)
JOB_FAILURE_CODES: frozenset[FailureCode] = frozenset(FailureCode) - NOT_JOB_CODES


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

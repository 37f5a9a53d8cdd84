"""Every `error_code` the gateway hands out, and which of them end a job. The error classes
(`errors`) carry these codes; `errors` re-exports them, so callers import codes from either."""

from __future__ import annotations

from enum import StrEnum


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

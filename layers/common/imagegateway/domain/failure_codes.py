"""Every `error_code` the gateway hands out, and which of them end a job. The error classes
(`errors`) carry these codes; `errors` re-exports them, so callers import codes from either."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType


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

"""Every domain error, in one module.

HTTP status codes are decided only in the HTTP resolvers' exception handlers. In Step Functions
tasks the error escapes the handler: its class name is the `Error` that `Retry` and `Catch` match.
Each class carries the stable `code` a caller sees on a FAILURE job.
"""

from __future__ import annotations


class GatewayError(Exception):
    code = "INTERNAL_ERROR"

    def __init__(self, message: str, *, job_id: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        # The job the error ended, when there is one: the caller can still look it up.
        self.job_id = job_id


class ConfigurationError(GatewayError):
    code = "CONFIGURATION_ERROR"


class UpstreamKeyMissingError(ConfigurationError):
    """The upstream API key secret has no value yet (a first deploy): nothing can be sent."""

    code = "UPSTREAM_NOT_CONFIGURED"


# --- the upstream ---------------------------------------------------------------------------


class UpstreamError(GatewayError):
    code = "UPSTREAM_ERROR"


class UpstreamUnavailableError(UpstreamError):
    """The upstream could not be reached, or kept answering 429/5xx after our retries."""

    code = "UPSTREAM_UNAVAILABLE"


class UpstreamRateLimitedError(UpstreamUnavailableError):
    """The upstream answered 429 (or 503) with a Retry-After longer than the function can wait:
    the wait happens in the state machine instead."""

    code = "UPSTREAM_RATE_LIMITED"

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class UpstreamOutcomeUnknownError(UpstreamError):
    """The submit POST may have reached the upstream, but its answer does not say whether the
    job was accepted (a 5xx from a load balancer, a 2xx without an id or without JSON, a crash
    after sending). The upstream may hold (and charge) the job: it is never POSTed again."""

    code = "UPSTREAM_OUTCOME_UNKNOWN"


class UpstreamTimeoutError(UpstreamOutcomeUnknownError):
    """The upstream took the request but did not answer in time: it may have accepted it."""

    code = "UPSTREAM_TIMEOUT"


class UpstreamAuthError(UpstreamError):
    """The upstream refused the gateway's own API key: an operator problem, not the caller's."""

    code = "UPSTREAM_AUTH_FAILED"


class UpstreamProtocolError(UpstreamError):
    """The upstream answered something that is not its documented protocol."""

    code = "UPSTREAM_BAD_RESPONSE"


# --- jobs -----------------------------------------------------------------------------------


class JobNotFoundError(GatewayError):
    code = "JOB_NOT_FOUND"


class ForeignTicketError(GatewayError):
    """A workflow task got a ticket that does not match its job row (an execution not started by
    the gateway, or a tampered input): it refuses to act on it."""

    code = "FOREIGN_TICKET"


class IncompleteResultError(GatewayError):
    """The upstream reported SUCCESS with fewer distinct images than the job asked for."""

    code = "INCOMPLETE_RESULT"


class MalformedBodyError(GatewayError):
    code = "MALFORMED_BODY"


class BodyTooLargeError(GatewayError):
    code = "BODY_TOO_LARGE"


class UnsupportedMediaTypeError(GatewayError):
    code = "UNSUPPORTED_MEDIA_TYPE"


class InvalidIdempotencyKeyError(GatewayError):
    code = "INVALID_IDEMPOTENCY_KEY"


# --- images ---------------------------------------------------------------------------------


class ImageDownloadError(GatewayError):
    """A transient failure fetching an image; the workflow retries the whole (idempotent) copy."""

    code = "DOWNLOAD_FAILED"


class ImageRejectedError(GatewayError):
    """The image can never be stored (not an image, too large, a host we do not fetch from)."""

    code = "IMAGE_REJECTED"


# --- failure codes without an exception class (set by the workflow or the reconciler) ---------

UPSTREAM_REJECTED = "UPSTREAM_REJECTED"  # the upstream's submit answer was FAILURE
UPSTREAM_FAILURE = "UPSTREAM_FAILURE"  # the upstream reported the job FAILURE
TIMED_OUT = "TIMED_OUT"  # the upstream did not finish before the job's deadline
NOT_SUBMITTED = "NOT_SUBMITTED"  # the gateway never sent the job upstream: nothing was charged
WORKFLOW_FAILED = "WORKFLOW_FAILED"  # the execution ended without recording the job's outcome
RECONCILE_FAILED = "RECONCILE_FAILED"  # the reconciler kept failing on the job: ended by it
INTERNAL_ERROR = GatewayError.code

# Errors Step Functions itself raises, by the name a Catch sees.
STATES_ERROR_CODES = {"States.Timeout": TIMED_OUT, "States.HeartbeatTimeout": TIMED_OUT}

# What a caller reads for a failure whose own message is not meant for callers (an unexpected
# exception, a Lambda crash): stable text per code; the details stay in the logs.
PUBLIC_MESSAGES: dict[str, str] = {
    INTERNAL_ERROR: "the gateway failed while handling this job; see the error_code",
    "CONFIGURATION_ERROR": "the gateway is misconfigured; its operator has been alerted",
    "UPSTREAM_NOT_CONFIGURED": "the gateway has no upstream API key yet; its operator must add it",
    WORKFLOW_FAILED: "the job's workflow ended without storing its images",
    TIMED_OUT: "the upstream did not finish the job before its deadline",
}

ERROR_CODES: dict[str, str] = {
    cls.__name__: cls.code
    for cls in (
        GatewayError,
        ConfigurationError,
        UpstreamKeyMissingError,
        UpstreamError,
        UpstreamUnavailableError,
        UpstreamRateLimitedError,
        UpstreamOutcomeUnknownError,
        UpstreamTimeoutError,
        UpstreamAuthError,
        UpstreamProtocolError,
        JobNotFoundError,
        ForeignTicketError,
        IncompleteResultError,
        InvalidIdempotencyKeyError,
        ImageDownloadError,
        ImageRejectedError,
    )
}

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


# --- the upstream ---------------------------------------------------------------------------


class UpstreamError(GatewayError):
    code = "UPSTREAM_ERROR"


class UpstreamUnavailableError(UpstreamError):
    """The upstream could not be reached, or kept answering 429/5xx after our retries."""

    code = "UPSTREAM_UNAVAILABLE"


class UpstreamTimeoutError(UpstreamError):
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


ERROR_CODES: dict[str, str] = {
    cls.__name__: cls.code
    for cls in (
        GatewayError,
        ConfigurationError,
        UpstreamError,
        UpstreamUnavailableError,
        UpstreamTimeoutError,
        UpstreamAuthError,
        UpstreamProtocolError,
        JobNotFoundError,
        InvalidIdempotencyKeyError,
        ImageDownloadError,
        ImageRejectedError,
    )
}

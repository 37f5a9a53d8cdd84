"""The one table from an error to its HTTP answer: status, what the caller reads, which of the
error's own fields go in the body, `Retry-After`, and what the operator's logs say. Every route
of every HTTP function answers its errors through it; nothing else decides a status code.

An error's own text is shown only where the gateway wrote it for callers (`message=None`); a
fixed text stands where the error's text may carry internal detail (it is logged instead).

No `from __future__ import annotations`: Powertools reads handler annotations at runtime.
"""

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
)
from pydantic import BaseModel

from imagegateway.domain.base import JobStatus
from imagegateway.domain.errors import (
    INTERNAL_ERROR,
    PUBLIC_MESSAGES,
    BodyTooLargeError,
    BudgetExceededError,
    ConfigurationError,
    FailureCode,
    GatewayError,
    IdempotencyAlreadyInProgressError,
    IdempotencyValidationError,
    InvalidCursorError,
    InvalidIdempotencyKeyError,
    InvalidRequestError,
    JobFinishedError,
    JobNotFoundError,
    MalformedBodyError,
    PromptTooLongError,
    UnsupportedMediaTypeError,
    UpstreamAuthError,
    UpstreamError,
    UpstreamKeyMissingError,
    UpstreamTimeoutError,
    WorkflowNotStartedError,
)
from imagegateway.domain.json_text import one_line
from imagegateway.domain.views import ErrorDetail, ErrorResponse, error_details
from imagegateway.platform.observability import logger

NO_SUCH_ROUTE = "no such job or route"
KEY_REUSED = "this Idempotency-Key was already used with a different request body"


def _public_text(exc: Exception) -> str:
    """The stable text of a configuration error's code: its own text names internals."""
    return PUBLIC_MESSAGES[getattr(exc, "code", INTERNAL_ERROR)]


INTERNAL_TEXT = PUBLIC_MESSAGES[INTERNAL_ERROR]


def _until_reset(exc: Exception) -> int:
    resets_at: datetime = exc.resets_at  # type: ignore[attr-defined]  # BudgetExceededError
    return max(1, math.ceil((resets_at - datetime.now(UTC)).total_seconds()))


@dataclass(frozen=True)
class HttpError:
    """How one error class is answered."""

    status: HTTPStatus
    # The text the caller reads: fixed, made from the error, or (None) the error's own message.
    message: str | Callable[[Exception], str] | None = None
    # The error's `code` as `error_code` (stable, documented in the README's table), or a
    # fixed code, or none.
    with_code: bool = True
    fixed_code: str | None = None
    # The error's own (field, message) details; its `resets_at` (BUDGET_EXCEEDED).
    with_details: bool = False
    with_resets_at: bool = False
    # The job the error is about, as `id` (a job the caller owns).
    with_job_id: bool = False
    # One detail naming this field (a header or query parameter), with the answer's text.
    field: str | None = None
    # Seconds for a `Retry-After` header: a number, or computed from the error.
    retry_after: int | Callable[[Exception], int] | None = None
    # Logged at error level for the operator (the caller never reads it).
    log: str | None = None
    # Logged with the traceback (an error nobody expected).
    log_exception: bool = False


# Looked up along the error's class hierarchy: the most specific entry wins.
HTTP_ERRORS: dict[type[Exception], HttpError] = {
    RequestUnsupportedContentType: HttpError(
        HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
        "send the body as JSON (Content-Type: application/json)",
        with_code=False,
    ),
    UnsupportedMediaTypeError: HttpError(
        HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
        "send the body as JSON (Content-Type: application/json)",
        with_code=False,
    ),
    BodyTooLargeError: HttpError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, with_code=False),
    # With where the JSON is wrong (MalformedJsonError's details), when that is known.
    MalformedBodyError: HttpError(HTTPStatus.BAD_REQUEST, with_code=False, with_details=True),
    InvalidIdempotencyKeyError: HttpError(
        HTTPStatus.UNPROCESSABLE_ENTITY,
        lambda exc: f"invalid request: {exc}",
        with_code=False,
        field="Idempotency-Key",
    ),
    IdempotencyValidationError: HttpError(
        HTTPStatus.UNPROCESSABLE_ENTITY, KEY_REUSED, with_code=False, field="Idempotency-Key"
    ),
    IdempotencyAlreadyInProgressError: HttpError(
        HTTPStatus.CONFLICT,
        "a request with this Idempotency-Key is in progress; retry",
        with_code=False,
        retry_after=1,
    ),
    JobNotFoundError: HttpError(HTTPStatus.NOT_FOUND, "no such job", with_code=False),
    # `status`: the job's own (it ended SUCCESS or FAILURE).
    JobFinishedError: HttpError(HTTPStatus.CONFLICT, with_job_id=True),
    PromptTooLongError: HttpError(HTTPStatus.UNPROCESSABLE_ENTITY, with_details=True),
    # A rule across a body and a query parameter (a body `webhook` that is not `webhook_url`):
    # answered as a field the validation refused.
    InvalidRequestError: HttpError(
        HTTPStatus.UNPROCESSABLE_ENTITY,
        lambda exc: f"invalid request: {exc}",
        with_code=False,
        with_details=True,
    ),
    BudgetExceededError: HttpError(
        HTTPStatus.TOO_MANY_REQUESTS, retry_after=_until_reset, with_resets_at=True
    ),
    InvalidCursorError: HttpError(HTTPStatus.BAD_REQUEST, field="cursor"),
    UpstreamError: HttpError(HTTPStatus.BAD_GATEWAY, with_job_id=True),
    UpstreamTimeoutError: HttpError(HTTPStatus.GATEWAY_TIMEOUT, with_job_id=True),
    UpstreamAuthError: HttpError(
        HTTPStatus.BAD_GATEWAY,
        with_job_id=True,
        log="the upstream refused the gateway's API key; check the secret",
    ),
    # A first deploy before the operator stored the key: nothing was stored or sent.
    UpstreamKeyMissingError: HttpError(
        HTTPStatus.SERVICE_UNAVAILABLE,
        _public_text,
        retry_after=60,
        log="the upstream API key secret has no value; see the README's deploy steps",
    ),
    # The job ended at once (nothing sent); a retry, after a moment, makes a new one.
    WorkflowNotStartedError: HttpError(
        HTTPStatus.SERVICE_UNAVAILABLE,
        with_job_id=True,
        retry_after=5,
        log="the job's workflow could not be started",
    ),
    ConfigurationError: HttpError(
        HTTPStatus.INTERNAL_SERVER_ERROR, _public_text, log="gateway misconfigured"
    ),
    # Its text may carry internal detail: logged, not returned.
    GatewayError: HttpError(HTTPStatus.INTERNAL_SERVER_ERROR, INTERNAL_TEXT, log_exception=True),
    # botocore's and other libraries' messages name roles, tables and buckets: logs only.
    Exception: HttpError(
        HTTPStatus.INTERNAL_SERVER_ERROR,
        INTERNAL_TEXT,
        fixed_code=INTERNAL_ERROR,
        log_exception=True,
    ),
}


def retryable_of_answer(exc: Exception, rule: HttpError) -> bool:
    """The decision of the error's code (shown or not: FailureCode.retryable). A library error
    with no code of its own (an idempotency key in use, an unsupported media type) is worth
    retrying exactly when its answer says when (Retry-After): the table already decided that."""
    own = getattr(exc, "code", None) or rule.fixed_code
    if isinstance(own, FailureCode):
        return own.retryable
    return rule.retry_after is not None


def rule_for(exc: Exception) -> HttpError:
    return next(HTTP_ERRORS[cls] for cls in type(exc).__mro__ if cls in HTTP_ERRORS)


def json_answer(status: HTTPStatus, model: BaseModel) -> Response[Any]:
    """A JSON answer without null fields, as the upstream answers (no `error` on SUCCESS...)."""
    return Response(
        status_code=status.value,
        content_type="application/json",
        body=model.model_dump(mode="json", exclude_none=True),
    )


def error_answer(exc: Exception) -> Response[Any]:
    """The answer the table gives `exc`, logged as the table says."""
    rule = rule_for(exc)
    if callable(rule.message):
        text = rule.message(exc)
    else:
        text = rule.message or str(getattr(exc, "message", "") or exc)
    own_message = str(getattr(exc, "message", ""))
    if rule.log_exception:
        logger.exception("unexpected error", extra={"error_type": type(exc).__name__})
    elif rule.log:
        logger.error(rule.log, extra={"job_id": getattr(exc, "job_id", None), "error": own_message})
    details = [
        ErrorDetail(field=field, message=message)
        for field, message in (getattr(exc, "details", []) if rule.with_details else [])
    ]
    if rule.field:
        details.append(ErrorDetail(field=rule.field, message=own_message or text))
    code = rule.fixed_code or (getattr(exc, "code", None) if rule.with_code else None)
    body = ErrorResponse(
        retryable=retryable_of_answer(exc, rule),
        status=JobStatus(exc.status) if isinstance(exc, JobFinishedError) else JobStatus.FAILURE,
        error=text,
        error_code=code,
        details=details,
        id=getattr(exc, "job_id", None) if rule.with_job_id else None,
        resets_at=getattr(exc, "resets_at", None) if rule.with_resets_at else None,
    )
    answer = json_answer(rule.status, body)
    if rule.retry_after is not None:
        seconds = rule.retry_after(exc) if callable(rule.retry_after) else rule.retry_after
        answer.headers["Retry-After"] = str(seconds)
    return answer


def not_found() -> ErrorResponse:
    return ErrorResponse(error=NO_SUCH_ROUTE, retryable=FailureCode.JOB_NOT_FOUND.retryable)


def validation_answer(exc: RequestValidationError) -> Response[Any]:
    """Powertools' validation of the route's parameters and body, as the contract says."""
    errors = list(exc.errors())
    if any(tuple(err.get("loc", ()))[:1] == ("path",) for err in errors):
        # e.g. /sd/<not a kind>/v1/status/<id>: no such route, as API Gateway would say.
        return json_answer(HTTPStatus.NOT_FOUND, not_found())
    if any(err.get("type") == "json_invalid" for err in errors):
        return json_answer(
            HTTPStatus.BAD_REQUEST,
            ErrorResponse(
                error="the body is not valid JSON",
                retryable=FailureCode.MALFORMED_BODY.retryable,
            ),
        )
    details = error_details(errors)
    summary = "; ".join(f"{d.field}: {d.message}" for d in details[:3])
    return json_answer(
        HTTPStatus.UNPROCESSABLE_ENTITY,
        # One line, as the contract says, whatever characters an unknown field's name holds.
        ErrorResponse(
            error=one_line(f"invalid request: {summary}", 1000),
            details=details,
            retryable=FailureCode.INVALID_REQUEST.retryable,
        ),
    )


def register_error_handlers(app: APIGatewayHttpResolver) -> None:
    app.exception_handler(RequestValidationError)(validation_answer)
    app.exception_handler(list(HTTP_ERRORS))(error_answer)

    @app.not_found
    def _no_route(exc: Exception) -> Response[Any]:
        # e.g. a job id with characters no route accepts: the contract's 404, not Powertools'.
        return json_answer(HTTPStatus.NOT_FOUND, not_found())

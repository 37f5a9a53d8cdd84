"""What the HTTP functions share: the caller's identity and the mapping of errors to answers.

This module is the only place that decides HTTP status codes.
"""

from __future__ import annotations

import re
from http import HTTPStatus
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
)
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
    IdempotencyValidationError,
)
from pydantic import BaseModel

from imagegateway.errors import (
    INTERNAL_ERROR,
    PUBLIC_MESSAGES,
    BodyTooLargeError,
    ConfigurationError,
    GatewayError,
    InvalidIdempotencyKeyError,
    JobNotFoundError,
    MalformedBodyError,
    UnsupportedMediaTypeError,
    UpstreamAuthError,
    UpstreamError,
    UpstreamKeyMissingError,
    UpstreamTimeoutError,
)
from imagegateway.models import ErrorDetail, ErrorResponse
from imagegateway.observability import logger

ANONYMOUS = "anonymous"


# arn:aws:sts::<account>:assumed-role/<role name>/<session name>
_ASSUMED_ROLE = re.compile(r"^arn:(aws[a-z-]*):sts::(\d{12}):assumed-role/([^/]+)/.+$")


def caller_identity(event: APIGatewayProxyEventV2) -> str:
    """Who owns the jobs a request makes and sees: an identity the caller cannot choose.

    - IAM: an assumed role is identified by its role, never by its session name (whoever may
      assume the role picks that name, so "alice" could be anyone; and a client whose session
      name changes per task keeps its jobs and idempotency keys); an IAM user by its ARN.
    - JWT: the issuer and the subject together (a subject is unique only per issuer).
    - No authorizer (local stack, auth off): anonymous.
    """
    authorizer = event.request_context.authorizer
    if authorizer is not None:
        iam = authorizer.iam
        if iam is not None and (iam.user_arn or iam.caller_id):
            arn = str(iam.user_arn or "")
            role = _ASSUMED_ROLE.match(arn)
            if role is not None:
                partition, account, name = role.groups()
                return f"arn:{partition}:iam::{account}:role/{name}"
            return arn or f"iam:{iam.account_id}:{str(iam.caller_id).split(':')[0]}"
        claims = authorizer.jwt_claim or {}
        if claims.get("sub"):
            issuer = claims.get("iss")
            return f"jwt:{issuer}#{claims['sub']}" if issuer else f"jwt:{claims['sub']}"
    return ANONYMOUS


def json_answer(status: HTTPStatus, model: BaseModel) -> Response[Any]:
    """A JSON answer without null fields, as the upstream answers (no `error` on SUCCESS...)."""
    return Response(
        status_code=status.value,
        content_type="application/json",
        body=model.model_dump(mode="json", exclude_none=True),
    )


def error_answer(status: HTTPStatus, error: ErrorResponse) -> Response[Any]:
    return json_answer(status, error)


def _field_name(location: tuple[Any, ...]) -> str:
    parts = [part for part in location if part != "body"]
    name = ""
    for part in parts:
        name += f"[{part}]" if isinstance(part, int) else (f".{part}" if name else str(part))
    return name or "body"


def _details(errors: list[dict[str, Any]]) -> list[ErrorDetail]:
    return [
        ErrorDetail(field=_field_name(tuple(err.get("loc", ()))), message=str(err.get("msg", "")))
        for err in errors
    ]


def register_error_handlers(app: APIGatewayHttpResolver) -> None:
    @app.exception_handler(RequestValidationError)
    def _invalid_request(exc: RequestValidationError) -> Response[Any]:
        errors = list(exc.errors())
        if any(tuple(err.get("loc", ()))[:1] == ("path",) for err in errors):
            # e.g. /sd/<not a kind>/v1/status/<id>: no such route, as API Gateway would say.
            return error_answer(HTTPStatus.NOT_FOUND, ErrorResponse(error="no such job or route"))
        if any(err.get("type") == "json_invalid" for err in errors):
            return error_answer(
                HTTPStatus.BAD_REQUEST, ErrorResponse(error="the body is not valid JSON")
            )
        details = _details(errors)
        summary = "; ".join(f"{d.field}: {d.message}" for d in details[:3])
        return error_answer(
            HTTPStatus.UNPROCESSABLE_ENTITY,
            ErrorResponse(error=f"invalid request: {summary}", details=details),
        )

    @app.exception_handler([RequestUnsupportedContentType, UnsupportedMediaTypeError])
    def _unsupported_type(exc: Exception) -> Response[Any]:
        return error_answer(
            HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
            ErrorResponse(error="send the body as JSON (Content-Type: application/json)"),
        )

    @app.exception_handler(BodyTooLargeError)
    def _too_large(exc: BodyTooLargeError) -> Response[Any]:
        return error_answer(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, ErrorResponse(error=exc.message))

    @app.exception_handler(MalformedBodyError)
    def _malformed(exc: MalformedBodyError) -> Response[Any]:
        return error_answer(HTTPStatus.BAD_REQUEST, ErrorResponse(error=exc.message))

    @app.exception_handler(InvalidIdempotencyKeyError)
    def _bad_idempotency_key(exc: InvalidIdempotencyKeyError) -> Response[Any]:
        detail = ErrorDetail(field="Idempotency-Key", message=exc.message)
        return error_answer(
            HTTPStatus.UNPROCESSABLE_ENTITY,
            ErrorResponse(error=f"invalid request: {exc.message}", details=[detail]),
        )

    @app.exception_handler(IdempotencyValidationError)
    def _key_reused(exc: IdempotencyValidationError) -> Response[Any]:
        message = "this Idempotency-Key was already used with a different request body"
        return error_answer(
            HTTPStatus.UNPROCESSABLE_ENTITY,
            ErrorResponse(
                error=message, details=[ErrorDetail(field="Idempotency-Key", message=message)]
            ),
        )

    @app.exception_handler(IdempotencyAlreadyInProgressError)
    def _key_in_progress(exc: IdempotencyAlreadyInProgressError) -> Response[Any]:
        answer = error_answer(
            HTTPStatus.CONFLICT,
            ErrorResponse(error="a request with this Idempotency-Key is in progress; retry"),
        )
        answer.headers["Retry-After"] = "1"
        return answer

    @app.exception_handler(JobNotFoundError)
    def _not_found(exc: JobNotFoundError) -> Response[Any]:
        return error_answer(HTTPStatus.NOT_FOUND, ErrorResponse(error="no such job"))

    @app.not_found
    def _no_route(exc: Exception) -> Response[Any]:
        # e.g. a job id with characters no route accepts: the contract's 404, not Powertools'.
        return error_answer(HTTPStatus.NOT_FOUND, ErrorResponse(error="no such job or route"))

    @app.exception_handler(UpstreamError)
    def _upstream(exc: UpstreamError) -> Response[Any]:
        if isinstance(exc, UpstreamTimeoutError):
            status = HTTPStatus.GATEWAY_TIMEOUT
        else:
            status = HTTPStatus.BAD_GATEWAY
        if isinstance(exc, UpstreamAuthError):
            logger.error("the upstream refused the gateway's API key; check the secret")
        return error_answer(
            status, ErrorResponse(error=exc.message, error_code=exc.code, id=exc.job_id)
        )

    @app.exception_handler(UpstreamKeyMissingError)
    def _no_upstream_key(exc: UpstreamKeyMissingError) -> Response[Any]:
        # A first deploy before the operator stored the key: nothing was stored or sent.
        logger.error("the upstream API key secret has no value; see the README's deploy steps")
        answer = error_answer(
            HTTPStatus.SERVICE_UNAVAILABLE,
            ErrorResponse(error=PUBLIC_MESSAGES[exc.code], error_code=exc.code),
        )
        answer.headers["Retry-After"] = "60"
        return answer

    @app.exception_handler(ConfigurationError)
    def _misconfigured(exc: ConfigurationError) -> Response[Any]:
        logger.error("gateway misconfigured", extra={"error": exc.message})
        return error_answer(
            HTTPStatus.INTERNAL_SERVER_ERROR,
            ErrorResponse(error=PUBLIC_MESSAGES[exc.code], error_code=exc.code),
        )

    @app.exception_handler(GatewayError)
    def _gateway_error(exc: GatewayError) -> Response[Any]:
        # Its text may carry internal detail: logged, not returned.
        logger.exception("unexpected gateway error")
        return error_answer(
            HTTPStatus.INTERNAL_SERVER_ERROR,
            ErrorResponse(error=PUBLIC_MESSAGES[INTERNAL_ERROR], error_code=exc.code),
        )

    @app.exception_handler(Exception)
    def _unexpected(exc: Exception) -> Response[Any]:
        # botocore and other libraries' messages name roles, tables and buckets: logs only.
        logger.exception("unexpected error")
        return error_answer(
            HTTPStatus.INTERNAL_SERVER_ERROR,
            ErrorResponse(error=PUBLIC_MESSAGES[INTERNAL_ERROR], error_code=INTERNAL_ERROR),
        )

"""POST /sd/text2image/v1: validate the upstream's own body, send it once, start the workflow.

No `from __future__ import annotations` here: Powertools reads the route's annotations at
runtime to find the body model.
"""

from http import HTTPStatus
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.openapi.params import Body
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from imagegateway.http import caller_identity, json_answer, register_error_handlers
from imagegateway.idempotency import submit_job_once, validated_key
from imagegateway.models import ErrorResponse, JobStatus, JobView, Text2ImageRequest
from imagegateway.observability import logger, metrics, tracer
from imagegateway.service import submit_job

# HTTP API v2 lower-cases header names.
IDEMPOTENCY_HEADER = "idempotency-key"

app = APIGatewayHttpResolver(enable_validation=True)
register_error_handlers(app)


@app.post(
    "/sd/text2image/v1",
    summary="Submit a text2image job (the upstream's own request body)",
    responses={
        200: {
            "description": "The result is already known (e.g. the upstream refused the job)",
            "content": {"application/json": {"model": JobView}},
        },
        202: {
            "description": "Accepted: poll the status endpoint with the id",
            "content": {"application/json": {"model": JobView}},
        },
        400: {
            "description": "Malformed JSON",
            "content": {"application/json": {"model": ErrorResponse}},
        },
        422: {
            "description": "Invalid field",
            "content": {"application/json": {"model": ErrorResponse}},
        },
        502: {
            "description": "The upstream failed",
            "content": {"application/json": {"model": ErrorResponse}},
        },
        504: {
            "description": "The upstream did not answer",
            "content": {"application/json": {"model": ErrorResponse}},
        },
    },
)
@tracer.capture_method
def submit(request: Annotated[Text2ImageRequest, Body()]) -> Response[Any]:
    owner = caller_identity(app.current_event)
    key = validated_key(app.current_event.headers.get(IDEMPOTENCY_HEADER))
    if key is None:
        view = submit_job(request, owner=owner)
    else:
        view = submit_job_once(request, owner=owner, key=key, lambda_context=app.lambda_context)
    status = HTTPStatus.ACCEPTED if view.status is JobStatus.PENDING else HTTPStatus.OK
    return json_answer(status, view)


@logger.inject_lambda_context(
    correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True
)
@tracer.capture_lambda_handler
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)

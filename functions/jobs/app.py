"""GET /sd/text2image/v1/status/{id}: the job as the upstream would report it, with fresh URLs.

No `from __future__ import annotations`: Powertools reads the annotations at runtime.
"""

from http import HTTPStatus
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from imagegateway.http import caller_identity, json_answer, register_error_handlers
from imagegateway.models import ErrorResponse, JobView
from imagegateway.observability import logger, metrics, tracer
from imagegateway.service import job_view

app = APIGatewayHttpResolver(enable_validation=True)
register_error_handlers(app)


@app.get(
    "/sd/text2image/v1/status/<job_id>",
    summary="A job's status, with freshly presigned download URLs once it succeeded",
    responses={
        200: {"description": "The job", "content": {"application/json": {"model": JobView}}},
        404: {
            "description": "No such job (or not yours)",
            "content": {"application/json": {"model": ErrorResponse}},
        },
    },
)
@tracer.capture_method
def get_status(job_id: str) -> Response[Any]:
    return json_answer(HTTPStatus.OK, job_view(job_id, owner=caller_identity(app.current_event)))


@logger.inject_lambda_context(
    correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True
)
@tracer.capture_lambda_handler
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)

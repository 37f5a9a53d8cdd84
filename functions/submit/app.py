"""POST /sd/text2image/v1: validate the upstream's own body, send it once, start the workflow.

The route itself is `imagegateway.api.submit` (shared with the OpenAPI document).
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from imagegateway.api import make_resolver, submit_routes
from imagegateway.observability import logger, metrics, tracer

app = make_resolver(submit_routes)


@logger.inject_lambda_context(
    correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True
)
@tracer.capture_lambda_handler
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)

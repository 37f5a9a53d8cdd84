"""Workflow task: ask the upstream once; return the ticket with its status and the next wait."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from imagegateway.models import JobTicket
from imagegateway.observability import logger, metrics, tracer
from imagegateway.service import check_job


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    ticket = JobTicket.model_validate(event)
    logger.append_keys(job_id=ticket.job_id)
    return check_job(ticket).to_state()

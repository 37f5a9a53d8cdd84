"""Scheduled: end or resume every job still PENDING past its deadline plus a margin."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from imagegateway.collaborators import collaborators
from imagegateway.observability import logger, metrics, tracer
from imagegateway.reconciler import reconcile_overdue_jobs
from imagegateway.time_budget import invocation_budget


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    with invocation_budget(context):
        report = reconcile_overdue_jobs(collaborators())
    metrics.add_metric(
        name="JobsReconciled", unit="Count", value=len(report.resumed) + len(report.failed)
    )
    return report.model_dump(mode="json")

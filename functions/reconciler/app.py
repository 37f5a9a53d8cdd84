"""Scheduled: end or resume every job still PENDING past its deadline plus a margin."""

from imagegateway.entrypoints.handlers import scheduled_task
from imagegateway.use_cases.reconcile import reconcile_overdue_jobs

lambda_handler = scheduled_task(
    reconcile_overdue_jobs,
    requires=("state_machine_arn", "upstream_api_key_secret_name", "usage_table_name"),
)

"""Scheduled, every minute: start jobs whose workflow never started, tell endings left untold,
end or resume jobs still PENDING past their deadline plus a margin."""

from imagegateway.entrypoints.handlers import scheduled_task
from imagegateway.use_cases.reconcile import reconcile_jobs

lambda_handler = scheduled_task(
    reconcile_jobs,
    requires=("state_machine_arn", "upstream_api_key_secret_name", "usage_table_name"),
)

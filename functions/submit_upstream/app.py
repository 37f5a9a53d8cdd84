"""Workflow task: send the job's stored request upstream, at most once (see submit_upstream)."""

from imagegateway.entrypoints.handlers import workflow_task
from imagegateway.use_cases.steps.send_job import send_job

lambda_handler = workflow_task(
    send_job, requires=("upstream_api_key_secret_name", "usage_table_name")
)

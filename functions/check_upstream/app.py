"""Workflow task: ask the upstream once; return the ticket with its status and the next wait."""

from imagegateway.entrypoints.handlers import workflow_task
from imagegateway.use_cases.steps.check_job import check_job

lambda_handler = workflow_task(check_job, requires=("upstream_api_key_secret_name",))

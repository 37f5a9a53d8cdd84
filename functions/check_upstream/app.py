"""Workflow task: ask the upstream once; return the ticket with its status and the next wait."""

from imagegateway.check_job import check_job
from imagegateway.handlers import workflow_task

lambda_handler = workflow_task(check_job, requires=("upstream_api_key_secret_name",))
